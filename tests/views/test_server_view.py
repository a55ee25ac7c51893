"""The server side in the reports and on the console, from the demo run (its simulated deployments
serve vLLM-named /metrics)."""

from __future__ import annotations

import json

from loadbench.views.pages import run_html, run_markdown
from loadbench.views.text import server_text


def test_demo_reports_show_the_server_side_and_reconcile(demo_run):
    summary = json.loads((demo_run / "summary.json").read_text())
    for name, cand in summary["candidates"].items():
        server = cand["server"]
        assert server["preset"] == "vllm" and server["scrapes"]["failures"] == {}, name
        rec = server["reconciliation"]
        assert rec["output_tokens"]["match"] is True and rec["input_tokens"]["match"] is True, (name, rec)
        timeline = server["timeline"]
        assert len(timeline["t_s"]) == len(timeline["running"]) == len(timeline["waiting"]) >= 3
        assert timeline["client_p95_s"] and all(v > 0 for _, v in timeline["client_p95_s"])
    md = run_markdown(summary)
    assert "### Server side" in md and "client" in md and ": match" in md
    html = run_html(summary)
    assert "<h2>Server side</h2>" in html and all(f"{n}: server requests running and waiting" in html for n in summary["candidates"])
    assert "counts reconcile with the client" in server_text(summary)


def test_a_mismatch_is_shouted_not_whispered(demo_run):
    summary = json.loads((demo_run / "summary.json").read_text())
    name = next(iter(summary["candidates"]))
    server = summary["candidates"][name]["server"]
    server["reconciliation"]["output_tokens"].update(server=1.0, match=False, difference=-5.0)
    server["caveats"] = ["output_tokens: the server counted 1, the client 6 (-5): someone else is using the server"]
    assert "MISMATCH" in run_markdown(summary) and "someone else is using the server" in run_html(summary)
    assert "counts DIFFER from the client's: output tokens" in server_text(summary)
