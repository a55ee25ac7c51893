"""Retries (off by default, counted apart, latency from the first intended send) and abort_on."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def scenario(tmp_path, extra_candidate="", extra="", faults="{http_5xx: 0.5}", duration=3, rate=20):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"question {i}", "target": "ok"}) + "\n" for i in range(10)))
    path = tmp_path / "s.yaml"
    path.write_text(f"""
dataset: {data}
candidates:
  - name: flaky
    sim: instant
    sim_faults: {faults}
{extra_candidate}
load: {{arrival: constant, rate_qps: {rate}, duration_s: {duration}, warmup_s: 0}}
{extra}
""")
    return path


def run(path, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "loadbench", "run", str(path), "--out", str(tmp_path / "out"), "--json", "--quiet",
                           "--no-metrics", "--fail-on", "none"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None)


def test_retries_are_off_by_default(tmp_path):
    _proc, summary = run(scenario(tmp_path), tmp_path)
    req = summary["candidates"]["flaky"]["requests"]
    assert req["retries"] == 0 and req["errors"]["http_5xx"] > 10


def test_retries_when_enabled_are_counted_apart_and_latency_starts_at_the_first_intended_send(tmp_path):
    retry = "    retry: {max_attempts: 4, on_errors: [http_5xx], backoff_s: 0.05}"
    _proc, summary = run(scenario(tmp_path, extra_candidate=retry), tmp_path)
    c = summary["candidates"]["flaky"]
    assert c["requests"]["retries"] > 10
    assert c["requests"]["errors"].get("http_5xx", 0) < 0.2 * c["requests"]["scheduled"]  # most recovered (1 in 16 fail 4 times)
    (run_dir,) = list((tmp_path / "out").iterdir())
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    retried = [r for r in rows if r["retries"] and r["status"] == "ok"]
    assert retried
    for r in retried:
        # the backoff is inside the headline latency, and the first send stays the send time
        assert r["done_ns"] - r["intended_ns"] >= r["retries"] * 50_000_000 * 0.9
        assert r["sent_ns"] - r["intended_ns"] < 50_000_000


def test_abort_on_stops_early_and_keeps_everything(tmp_path):
    rule = "abort_on: [{metric: error_ratio, above: 0.3, window_s: 2, min_requests: 10}]"
    proc, summary = run(scenario(tmp_path, faults="{http_5xx: 0.9}", extra=rule, duration=30), tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert summary["outcome"]["stop_reason"].startswith("aborted: flaky error ratio")
    assert summary["outcome"]["duration_s"] < 15
    assert not summary["validity"]["valid"]
    req = summary["candidates"]["flaky"]["requests"]
    assert req["scheduled"] == req["sent"] + req["dropped"] and req["sent"] == req["ok"] + req["error_total"] + req["cancelled"]
    (run_dir,) = list((tmp_path / "out").iterdir())
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == req["scheduled"]
