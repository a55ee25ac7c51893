"""report.md (fits a PR comment) and a self-contained report.html (inline SVG, no network) for runs and sweeps."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from ..config.files import write_atomic
from .server_view import server_html, server_markdown
from .svgchart import bar_chart, line_chart
from .sweep_text import sweep_table
from .text import comparison_rows, fmt_s, fmt_usd, quality_details, session_tables, verdict_lines

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:#111827;max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e5e7eb;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f9fafb}
.box{border-left:4px solid #2563eb;background:#eff6ff;padding:8px 12px;margin:12px 0}
.bad{border-color:#dc2626;background:#fef2f2}.ok{color:#16a34a}.fail{color:#dc2626;font-weight:600}
.meta{color:#6b7280;font-size:12px}.charts svg{margin:6px 12px 6px 0;border:1px solid #f3f4f6}
pre{background:#f9fafb;padding:8px;overflow-x:auto;font-size:12px}
"""


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _spectrum_ticks() -> list[tuple[float, str]]:
    return [(-math.log10(1 - p / 100), label) for p, label in ((0, "0%"), (90, "90%"), (99, "99%"), (99.9, "99.9%"), (99.99, "99.99%"))]


def _arrival_text(summary: dict[str, Any]) -> str:
    load = summary.get("load") or {}
    trace = summary.get("trace")
    if trace:
        return f"trace replay of {trace['rows']} rows over {trace['span_s']:.1f} s at {trace['time_scale']:g}x speed"
    return f"{load.get('arrival')} {load.get('rate_qps')} req/s"


def run_markdown(summary: dict[str, Any]) -> str:
    cands = list(summary["candidates"])
    rows = [[label, *cells] for label, cells in comparison_rows(summary)]
    parts = [f"## loadbench run `{summary.get('run_id')}`", ""]
    decision = (summary.get("decision") or {}).get("summary")
    if decision:
        parts += [f"**{decision}**", ""]
    insecure = [n for n, c in summary["candidates"].items() if c.get("tls_verify") is False]
    if insecure:
        parts += [f"> **TLS certificate verification was OFF** (insecure: true) for: {', '.join(insecure)}", ""]
    parts += [_md_table(["", *cands], rows), ""]
    for title, headers, table_rows in session_tables(summary):
        parts += [f"### {title.capitalize()}", "", _md_table(headers, [[label, *cells] for label, cells in table_rows]), ""]
    details = quality_details(summary)
    verdicts = verdict_lines(summary)
    if details or verdicts:
        parts += ["```", *(x for x in (details, verdicts) if x), "```", ""]
    parts += server_markdown(summary, _md_table)
    load = summary.get("load") or {}
    parts.append(f"_{summary.get('mode')}, {_arrival_text(summary)}, warm-up {load.get('warmup_s')} s excluded; "
                 "latency is measured from the intended send time._")
    return "\n".join(parts) + "\n"


def run_html(summary: dict[str, Any]) -> str:
    cands = summary["candidates"]
    names = list(cands)
    rows = [[label, *cells] for label, cells in comparison_rows(summary)]
    decision = summary.get("decision") or {}
    validity = summary.get("validity") or {}
    charts = []
    charts.append(line_chart(
        "Latency percentile spectrum",
        [(n, [(-math.log10(max(1 - p / 100, 1e-5)), v) for p, v in c.get("latency_spectrum") or []]) for n, c in cands.items()],
        x_label="percentile", y_label="latency (s), from intended send", x_ticks=_spectrum_ticks(), y_fmt=lambda v: fmt_s(v),
    ))
    classes = sorted({k for c in cands.values() for k in (c["requests"]["errors"] or {})} |
                     {k for c in cands.values() for k in (c.get("quality_error_classes") or {})})
    if classes:
        charts.append(bar_chart("Error classes", classes[:12],
                                [(n, [float((c["requests"]["errors"] or {}).get(k, 0) + (c.get("quality_error_classes") or {}).get(k, 0))
                                      for k in classes[:12]]) for n, c in cands.items()], y_label="count"))
    charts.append(bar_chart("Cost", ["per task", "per correct task"],
                            [(n, [c["cost_usd"].get("per_request") or 0.0, c["cost_usd"].get("per_correct") or 0.0]) for n, c in cands.items()],
                            y_fmt=fmt_usd, y_label="USD"))
    tags = sorted({t for c in cands.values() for t in (c.get("by_tag") or {})})
    tag_rows = [[t, *[_acc((cands[n].get("by_tag") or {}).get(t)) for n in names]] for t in tags]
    verdicts = verdict_lines(summary)
    details = quality_details(summary)
    box_class = "box bad" if not validity.get("valid", True) else "box"
    html = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>loadbench run {escape(str(summary.get('run_id')))}</title><style>{CSS}</style></head><body>",
        f"<h1>loadbench run {escape(str(summary.get('run_id')))}</h1>",
        f"<p class='meta'>scenario {escape(str(summary.get('scenario')))} · {escape(str(summary.get('mode')))} · "
        f"{escape(_arrival_text(summary))} · "
        f"started {escape(str(summary.get('started_at')))} · loadbench {escape(str((summary.get('provenance') or {}).get('loadbench')))}</p>",
    ]
    insecure = [n for n, c in cands.items() if c.get("tls_verify") is False]
    if insecure:
        html.append(f"<div class='box bad'>TLS certificate verification was OFF (insecure: true) for: {escape(', '.join(insecure))}</div>")
    if decision.get("summary"):
        html.append(f"<div class='{box_class}'><b>{escape(decision['summary'])}</b>")
        if decision.get("reasons") or decision.get("caveats"):
            html.append("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in decision.get("reasons", [])[1:])
                        + "".join(f"<li>⚠ {escape(c)}</li>" for c in decision.get("caveats", [])) + "</ul>")
        html.append("</div>")
    html += ["<h2>Comparison</h2>", _html_table(["", *names], rows),
             "<p class='meta'>Latency is measured from the intended send time; service time from the actual send. "
             "* marks a percentile with too few samples.</p>"]
    for title, headers, table_rows in session_tables(summary):
        html += [f"<h2>{escape(title.capitalize())}</h2>", _html_table(headers, [[label, *cells] for label, cells in table_rows])]
    if verdicts or details:
        html += ["<h2>SLO, goodput and quality</h2>", f"<pre>{escape(verdicts)}\n\n{escape(details)}</pre>"]
    html += ["<h2>Charts</h2>", "<div class='charts'>", *charts, "</div>"]
    html += server_html(summary, _html_table)
    if tag_rows:
        html += ["<h2>Accuracy by tag and prompt length</h2>", _html_table(["tag", *names], tag_rows)]
    html.append("</body></html>")
    return "".join(html)


def _acc(group: dict[str, Any] | None) -> str:
    if not group or group.get("value") is None:
        return "-"
    return f"{100 * group['value']:.0f}% (n={group['n']})"


def write_run_reports(run_dir: Path, summary: dict[str, Any]) -> list[Path]:
    md, html = run_dir / "report.md", run_dir / "report.html"
    write_atomic(md, run_markdown(summary).encode())
    write_atomic(html, run_html(summary).encode())
    return [md, html]


def sweep_markdown(result: dict[str, Any]) -> str:
    return (f"## loadbench sweep `{result.get('sweep_id')}`\n\nSLO: {'; '.join(result.get('slo') or []) or '(none: errors and saturation only)'}\n\n"
            f"```\n{sweep_table(result)}\n```\n")


def sweep_html(result: dict[str, Any]) -> str:
    cands = result["candidates"]
    charts = []

    def curve(key: str, sub: str | None = None) -> list[tuple[str, list[tuple[float, float]]]]:
        out = []
        for name, c in cands.items():
            pts = []
            for r in c["curve"]:
                v = r[key][sub] if sub else r[key]
                if v is not None:
                    pts.append((r["offered_qps"], v))
            out.append((f"{name}{' ' + sub if sub else ''}", sorted(pts)))
        return out

    charts.append(line_chart("Latency vs offered rate", curve("latency_s", "p50") + curve("latency_s", "p95") + curve("latency_s", "p99"),
                             x_label="offered rate (req/s)", y_label="latency (s)", y_fmt=fmt_s))
    charts.append(line_chart("Accuracy vs offered rate", curve("accuracy"), x_label="offered rate (req/s)", y_label="accuracy",
                             y_fmt=lambda v: f"{100 * v:.0f}%"))
    charts.append(line_chart("Goodput vs offered rate", curve("goodput_rps"), x_label="offered rate (req/s)",
                             y_label="on-time correct req/s"))
    rows = []
    for name, c in cands.items():
        p = c.get("projection") or {}
        cap = c.get("capacity") or {}
        rows.append([name, _bracket_text(cap), "-" if cap.get("estimate_qps") is None else f"{cap['estimate_qps']:.1f}",
                     "-" if c["max_sustainable_qps"] is None else f"{c['max_sustainable_qps']:g}",
                     "-" if not c.get("knee_qps") else f"{c['knee_qps']:g}", str(p.get("replicas", "-")),
                     fmt_usd((p.get("api") or {}).get("cost_per_task")), fmt_usd((p.get("api") or {}).get("monthly_usd")),
                     fmt_usd((p.get("self_hosted") or {}).get("monthly_usd"))])
    return "".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>loadbench sweep {escape(str(result.get('sweep_id')))}</title><style>{CSS}</style></head><body>",
        f"<h1>loadbench sweep {escape(str(result.get('sweep_id')))}</h1>",
        f"<p class='meta'>SLO: {escape('; '.join(result.get('slo') or []) or '(none)')} · arrivals {escape(str(result.get('arrival')))}</p>",
        "<h2>Capacity</h2>",
        _html_table(["candidate", "capacity bracket (req/s)", "estimate req/s", "max sustainable req/s", "knee req/s", "replicas", "API $/task", "API $/month", "self-hosted $/month"], rows),
        "<h2>Charts</h2><div class='charts'>", *charts, "</div>",
        f"<h2>Steps</h2><pre>{escape(sweep_table(result))}</pre>",
        "</body></html>",
    ])


def _bracket_text(cap: dict[str, Any]) -> str:
    if not cap:
        return "-"
    low, high = cap.get("low_qps"), cap.get("high_qps")
    conf = f" ({100 * (cap.get('confidence') or 0.95):g}%)"
    if low is None and high is None:
        return "not found"
    if high is None:
        return f"at least {low:.1f} (no rate failed)"
    if low is None:
        return f"below {high:.1f}"
    return f"{low:.1f} .. {high:.1f}{conf}"


def write_sweep_reports(sweep_dir: Path, result: dict[str, Any]) -> list[Path]:
    md, html = sweep_dir / "report.md", sweep_dir / "report.html"
    write_atomic(md, sweep_markdown(result).encode())
    write_atomic(html, sweep_html(result).encode())
    return [md, html]
