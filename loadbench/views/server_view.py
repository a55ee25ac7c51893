"""The report's "Server side" section: what each deployment's own metrics said, and whether the counts agree."""

from __future__ import annotations

from html import escape
from typing import Any

from .svgchart import line_chart
from .text import fmt_s

ROLE_LABELS = {"running": "running", "waiting": "waiting", "kv_usage": "KV cache"}
RECONCILED = {"output_tokens": "output tokens", "input_tokens": "input tokens", "requests": "finished requests"}


def _num(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if pct else f"{value:g}" if value == int(value) else f"{value:.1f}"


def server_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One table, a column per scraped candidate."""
    cands = {n: c["server"] for n, c in summary["candidates"].items() if c.get("server")}
    if not cands:
        return [], []
    names = list(cands)
    rows: list[list[str]] = [["preset", *(s["preset"] for s in cands.values())],
                             ["scrapes ok / all", *(f"{s['scrapes']['ok']} / {s['scrapes']['count']}" for s in cands.values())]]
    failures = [", ".join(f"{k} x{v}" for k, v in s["scrapes"]["failures"].items()) or "-" for s in cands.values()]
    if any(f != "-" for f in failures):
        rows.append(["scrape failures", *failures])
    for role, label in ROLE_LABELS.items():
        if any(role in (s.get("roles") or {}) for s in cands.values()):
            cells = []
            for s in cands.values():
                r = (s.get("roles") or {}).get(role)
                pct = role == "kv_usage"
                cells.append("-" if r is None else f"max {_num(r['max'], pct)}, mean {_num(r['mean'], pct)}")
            rows.append([f"server {label}", *cells])
    for key, label in RECONCILED.items():
        if any(key in (s.get("reconciliation") or {}) for s in cands.values()):
            cells = []
            for s in cands.values():
                e = (s.get("reconciliation") or {}).get(key)
                if e is None:
                    cells.append("-")
                    continue
                word = {True: "match", False: "MISMATCH", None: "not comparable"}[e["match"]]
                cells.append(f"client {e['client']:g} / server {e['server']:g}: {word}")
            rows.append([label, *cells])
    return ["", *names], rows


def server_caveats(summary: dict[str, Any]) -> list[str]:
    return [f"{n}: {c}" for n, cand in summary["candidates"].items() for c in (cand.get("server") or {}).get("caveats", [])]


def server_markdown(summary: dict[str, Any], md_table: Any) -> list[str]:
    headers, rows = server_rows(summary)
    if not rows:
        return []
    out = ["### Server side", "", md_table(headers, rows), ""]
    out += [f"> ⚠ {c}" for c in server_caveats(summary)]
    return out + ([""] if server_caveats(summary) else [])


def server_charts(summary: dict[str, Any]) -> list[str]:
    """Per scraped candidate: the server's queue and KV usage over time beside the client's p95."""
    charts = []
    for name, cand in summary["candidates"].items():
        timeline = (cand.get("server") or {}).get("timeline") or {}
        t = timeline.get("t_s") or []
        queue = [(label, list(zip(t, timeline[role]))) for role, label in (("running", "running"), ("waiting", "waiting"))
                 if timeline.get(role)]
        if queue:
            charts.append(line_chart(f"{name}: server requests running and waiting", queue, x_label="time (s)",
                                     y_label="requests"))
        if timeline.get("kv_usage"):
            charts.append(line_chart(f"{name}: server KV-cache usage", [("KV cache", list(zip(t, timeline["kv_usage"])))],
                                     x_label="time (s)", y_label="used", y_fmt=lambda v: f"{100 * v:.0f}%"))
        if timeline.get("client_p95_s") and (queue or timeline.get("kv_usage")):
            charts.append(line_chart(f"{name}: client latency p95 (same time axis)",
                                     [("p95", [(x, y) for x, y in timeline["client_p95_s"]])], x_label="time (s)",
                                     y_label="latency from intended send", y_fmt=fmt_s))
    return charts


def server_html(summary: dict[str, Any], html_table: Any) -> list[str]:
    headers, rows = server_rows(summary)
    if not rows:
        return []
    out = ["<h2>Server side</h2>", html_table(headers, rows)]
    caveats = server_caveats(summary)
    if caveats:
        out.append("<div class='box bad'><ul>" + "".join(f"<li>{escape(c)}</li>" for c in caveats) + "</ul></div>")
    out.append("<p class='meta'>From each deployment's own /metrics (server_metrics), scraped before the first request, "
               "during the run and after the last response; counts are reconciled over that window (warm-up included).</p>")
    charts = server_charts(summary)
    if charts:
        out += ["<div class='charts'>", *charts, "</div>"]
    return out
