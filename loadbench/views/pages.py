"""report.md (fits a PR comment) and a self-contained report.html (inline SVG, no network) for runs and sweeps."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..config.files import read_json, write_atomic
from ..config.slo_clauses import parse_clauses
from .fidelity_view import fidelity_lines, variant_rows
from .report_charts import cost_chart, error_charts, quality_charts, spectrum_chart, time_charts
from .report_data import ReportData, collect
from .server_view import server_html, server_markdown
from .svgchart import Band, Rule, line_chart
from .sweep_text import server_at_knee, sweep_table
from .text import comparison_rows, fmt_s, fmt_usd, quality_details, session_tables, slo_value, verdict_lines

TEMPLATES = Path(__file__).parent / "templates"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:#111827;max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e5e7eb;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f9fafb}
.box{border-left:4px solid #2563eb;background:#eff6ff;padding:8px 12px;margin:12px 0}
.bad{border-color:#dc2626;background:#fef2f2}.ok{color:#16a34a}.fail{color:#dc2626;font-weight:600}
.meta{color:#6b7280;font-size:12px}.charts svg{margin:6px 12px 6px 0;border:1px solid #f3f4f6}
pre{background:#f9fafb;padding:8px;overflow-x:auto;font-size:12px}
.toc{font-size:13px;margin:8px 0}.v-pass{color:#16a34a}.v-fail{color:#dc2626}.v-inconclusive,.v-unscored{color:#b45309}
table.slo td,table.slo th,table.drill td,table.drill th{text-align:left;vertical-align:top}table.drill{font-size:12px;width:100%}
table.drill td.text{min-width:220px;max-width:360px;white-space:pre-wrap;word-break:break-word}table.drill td.why{max-width:260px}
table.drill th[data-sort]{cursor:pointer}table.drill th[data-sort]:after{content:" ⇅";color:#9ca3af}
.filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin:8px 0;font-size:12px}
details summary{cursor:pointer}td.id{font-family:ui-monospace,monospace}ul.fidelity li.bad{color:#b91c1c}
"""

# Filters and sorting for the drill-down tables; static text (no data in it), inline so the page works offline.
SCRIPT = """
(function () {
  var table = document.getElementById('failed-table');
  if (!table) return;
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var controls = Array.prototype.slice.call(document.querySelectorAll('#failed-filters [data-filter]'));
  var count = document.getElementById('failed-count');
  function has(list, value) { return (' ' + list.toLowerCase() + ' ').indexOf(' ' + value + ' ') >= 0; }
  function apply() {
    var want = {};
    controls.forEach(function (c) { want[c.getAttribute('data-filter')] = c.value.trim().toLowerCase(); });
    var shown = 0;
    rows.forEach(function (r) {
      var ok = (!want.candidate || r.getAttribute('data-candidate').toLowerCase() === want.candidate)
        && (!want.scorers || has(r.getAttribute('data-scorers'), want.scorers))
        && (!want.tags || has(r.getAttribute('data-tags'), want.tags))
        && (!want.classes || has(r.getAttribute('data-classes'), want.classes))
        && (!want.text || r.textContent.toLowerCase().indexOf(want.text) >= 0);
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    count.textContent = shown + ' of ' + rows.length + ' shown';
  }
  controls.forEach(function (c) { c.addEventListener('input', apply); c.addEventListener('change', apply); });
  Array.prototype.forEach.call(table.querySelectorAll('th[data-sort]'), function (th) {
    th.addEventListener('click', function () {
      var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = th.getAttribute('data-sort') === 'num';
      var dir = th.getAttribute('data-dir') === 'asc' ? -1 : 1;
      th.setAttribute('data-dir', dir === 1 ? 'asc' : 'desc');
      function key(r) {
        var cell = r.cells[idx];
        return numeric ? parseFloat(cell.getAttribute('data-value') || '0') : cell.textContent.trim().toLowerCase();
      }
      rows.sort(function (a, b) { var x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  apply();
})();
"""


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
    fid = fidelity_lines(summary)
    if fid:
        headers, rows = variant_rows(summary)
        parts += [f"### {fid[0]}", ""] + ([_md_table(headers, rows), ""] if rows else []) + ["```", *fid[1:], "```", ""]
    load = summary.get("load") or {}
    parts.append(f"_{summary.get('mode')}, {_arrival_text(summary)}, warm-up {load.get('warmup_s')} s excluded; "
                 "latency is measured from the intended send time._")
    return "\n".join(parts) + "\n"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(fmt_s=fmt_s, fmt_usd=fmt_usd)
    return env


ENV = _env()


def _slo_rows(cands: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, c in cands.items():
        for r in (c.get("slo") or {}).get("clauses") or []:
            lo, hi = r.get("ci_low"), r.get("ci_high")
            interval = "-" if (lo, hi) == (None, None) else (
                f"{'-' if lo is None else slo_value({**r, 'measured': lo})} .. {'unbounded' if hi is None else slo_value({**r, 'measured': hi})}")
            more = r.get("more_samples")
            rows.append({"candidate": name, "clause": r["clause"], "verdict": r.get("verdict") or "-",
                         "measured": slo_value(r), "interval": interval, "n": r.get("n") or 0,
                         "more": f"about {more:,} more requests" if more else ("decided" if r.get("verdict") in ("pass", "fail") else "-")})
    return rows


def _goodput_lines(cands: dict[str, Any], measured: bool) -> list[str]:
    out = []
    for name, c in cands.items():
        g = c.get("goodput") or {}
        if measured and g.get("fraction") is not None:
            rate = f"{g['rps']:.2f} req/s, " if g.get("rps") is not None else ""
            out.append(f"{name}: goodput {rate}{100 * g['fraction']:.1f}% of attempts on time and correct")
    return out


def _facets(data: ReportData) -> dict[str, list[str]]:
    return {"scorers": sorted({n for f in data.failed for n in f.scorer_names}),
            "tags": sorted({t for f in data.failed for t in f.tags}),
            "classes": sorted({c for f in data.failed for c in f.error_classes})}


def run_html(summary: dict[str, Any], data: ReportData | None = None) -> str:
    """The self-contained page: every chart inline SVG, the drill-down filtered by a little inline script."""
    cands = summary["candidates"]
    data = data or ReportData([], 0, [], 0, {}, float((summary.get("window") or {}).get("warmup_s") or 0.0))
    bucket = next((tl.bucket_s for tl in data.timelines.values()), 1.0)
    server = "".join(server_html(summary, _html_table))
    fid_headers, fid_rows = variant_rows(summary)
    return ENV.get_template("run.html.j2").render(
        s=summary, css=Markup(CSS), arrival=_arrival_text(summary), names=list(cands),
        rows=comparison_rows(summary), sessions=session_tables(summary), decision=summary.get("decision") or {"reasons": [], "caveats": []},
        validity=summary.get("validity") or {}, insecure=[n for n, c in cands.items() if c.get("tls_verify") is False],
        slo_rows=_slo_rows(cands), goodput=_goodput_lines(cands, bool(summary.get("slo")) or any(c.get("accuracy") for c in cands.values())),
        bucket=f"{bucket:g} s", time_charts=[Markup(c) for c in time_charts(data)],
        distribution_charts=[Markup(spectrum_chart(cands)), Markup(cost_chart(summary))],
        quality_charts=[Markup(c) for c in quality_charts(summary)], details=quality_details(summary),
        error_charts=[Markup(c) for c in error_charts(summary)], server=Markup(server), data=data, facets=_facets(data),
        footer=f"{summary.get('mode')}, {_arrival_text(summary)}, warm-up {(summary.get('load') or {}).get('warmup_s')} s excluded; "
               "latency is measured from the intended send time.",
        script=Markup(SCRIPT), fidelity_lines=fidelity_lines(summary), fid_headers=fid_headers, fid_rows=fid_rows)


def _acc(group: dict[str, Any] | None) -> str:
    if not group or group.get("value") is None:
        return "-"
    return f"{100 * group['value']:.0f}% (n={group['n']})"


def write_run_reports(run_dir: Path, summary: dict[str, Any]) -> list[Path]:
    md, html = run_dir / "report.md", run_dir / "report.html"
    meta_path = run_dir / "run.json"
    meta = read_json(meta_path) if meta_path.exists() else {}
    write_atomic(md, run_markdown(summary).encode())
    write_atomic(html, run_html(summary, collect(run_dir, meta, summary)).encode())
    return [md, html]


def sweep_markdown(result: dict[str, Any]) -> str:
    return (f"## loadbench sweep `{result.get('sweep_id')}`\n\nSLO: {'; '.join(result.get('slo') or []) or '(none: errors and saturation only)'}\n\n"
            f"```\n{sweep_table(result)}\n```\n")


def _slo_rules(slo: list[str], metric: str, stat: str) -> list[Rule]:
    """The SLO's bound on this metric and statistic, as a line across the chart."""
    return [Rule(c.threshold, f"SLO {c.text}") for c in parse_clauses(slo)
            if c.metric == metric and c.stat == stat and c.op in ("<=", "<")]


def sweep_html(result: dict[str, Any]) -> str:
    cands = result["candidates"]

    def curve(key: str, sub: str | None = None) -> list[tuple[str, list[tuple[float, float]]]]:
        out = []
        for name, c in cands.items():
            pts = sorted((r["offered_qps"], r[key][sub] if sub else r[key]) for r in c["curve"]
                         if (r[key][sub] if sub else r[key]) is not None)
            out.append((f"{name}{' ' + sub if sub else ''}", pts))
        return out

    bands = []
    for name, c in cands.items():
        cap = c.get("capacity") or {}
        if cap.get("low_qps") is not None and cap.get("high_qps") is not None:
            bands.append(Band(cap["low_qps"], cap["high_qps"], f"{name} capacity", "#e0e7ff"))
    slo = result.get("slo") or []
    charts = [
        line_chart("Latency p95 vs offered rate", curve("latency_s", "p95"), x_label="offered rate (req/s)", y_label="latency p95",
                   y_seconds=True, bands=bands, rules=_slo_rules(slo, "latency", "p95")),
        line_chart("Latency p50 / p99 vs offered rate", curve("latency_s", "p50") + curve("latency_s", "p99"),
                   x_label="offered rate (req/s)", y_label="latency", y_seconds=True, bands=bands),
        line_chart("Goodput vs offered rate", curve("goodput_rps"), x_label="offered rate (req/s)", y_label="on-time correct req/s",
                   bands=bands),
        line_chart("Accuracy vs offered rate", curve("accuracy"), x_label="offered rate (req/s)", y_label="accuracy",
                   y_fmt=lambda v: f"{100 * v:.0f}%", bands=bands),
    ]
    rows = []
    for name, c in cands.items():
        p = c.get("projection") or {}
        cap = c.get("capacity") or {}
        rows.append([name, _bracket_text(cap), "-" if cap.get("estimate_qps") is None else f"{cap['estimate_qps']:.1f}",
                     "-" if c["max_sustainable_qps"] is None else f"{c['max_sustainable_qps']:g}",
                     "-" if not c.get("knee_qps") else f"{c['knee_qps']:g}", str(p.get("replicas", "-")),
                     fmt_usd((p.get("api") or {}).get("cost_per_task")), fmt_usd((p.get("api") or {}).get("monthly_usd")),
                     fmt_usd((p.get("self_hosted") or {}).get("monthly_usd"))])
    confidence = next((f"{100 * (c.get('capacity') or {}).get('confidence', 0.95):g}%" for c in cands.values()), "95%")
    return ENV.get_template("sweep.html.j2").render(
        r=result, css=Markup(CSS), rows=rows, charts=[Markup(c) for c in charts], steps=sweep_table(result),
        headers=["candidate", "capacity bracket (req/s)", "estimate req/s", "max sustainable req/s", "knee req/s", "replicas",
                 "API $/task", "API $/month", "self-hosted $/month"],
        server_lines=[f"{n}: server {line}" for n, c in cands.items() if (line := server_at_knee(c))], confidence=confidence)


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
