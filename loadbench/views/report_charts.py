"""The run report's charts: over time, distributions that say what they can support, quality and errors."""

from __future__ import annotations

import math
from typing import Any

from .report_data import ReportData
from .svgchart import Band, hbar_chart, line_chart, scatter_chart, seconds_axis
from .text import fmt_s, fmt_usd

SPECTRUM_TICKS = (0.0, 50.0, 90.0, 99.0, 99.9, 99.99)
SMALL_GROUP = 30  # a tag with fewer scored items is drawn faint and flagged


def needed_samples(percentile: float) -> float:
    """Samples a percentile needs to be more than noise (the table's `*` rule: 10 / (1 - q))."""
    q = percentile / 100.0
    return math.inf if q >= 1.0 else 10.0 / (1.0 - q)


def _spectrum_x(p: float) -> float:
    return -math.log10(max(1.0 - p / 100.0, 1e-5))


def spectrum_chart(cands: dict[str, Any]) -> str:
    series, counts = [], {}
    for name, c in cands.items():
        counts[name] = (c.get("latency_s") or {}).get("count") or 0
        series.append((name, [(_spectrum_x(p), v) for p, v in c.get("latency_spectrum") or []]))
    values = [v for _, s in series for _, v in s if v is not None]
    fmt = seconds_axis(values)
    p_of = {round(_spectrum_x(p), 9): p for c in cands.values() for p, _ in c.get("latency_spectrum") or []}
    top = max(p_of.values(), default=100.0)
    ticks = [(_spectrum_x(p), f"p{p:g}" if p else "min") for p in SPECTRUM_TICKS if p < top]
    ticks.append((_spectrum_x(top), "max" if top >= 100 else f"p{top:g}"))  # the last tick is labelled

    def pct(x: float) -> float:
        return p_of.get(round(x, 9), 100.0)

    def weak(name: str, x: float) -> bool:
        p = pct(x)
        return p < 100.0 and counts.get(name, 0) < needed_samples(p)

    def label(name: str, x: float, y: float) -> str:
        p = pct(x)
        text = "max" if p >= 100 else f"p{p:g}"
        flag = f" (only {counts.get(name, 0)} samples: needs {needed_samples(p):,.0f})" if weak(name, x) else ""
        return f"{name}: {text} = {fmt(y)}{flag}"

    return line_chart("Latency percentile spectrum (from intended send)", series, x_label="percentile", y_label="latency",
                      x_ticks=ticks, y_fmt=fmt, point_label=label, weak=weak)


def time_charts(data: ReportData) -> list[str]:
    charts = []
    bands = [Band(0.0, data.warmup_s, "warm-up")] if data.warmup_s > 0 else []
    for name, tl in data.timelines.items():
        if not tl.t_s:
            continue
        lat = [("p50", list(zip(tl.t_s, tl.p50_s))), ("p95", list(zip(tl.t_s, tl.p95_s))), ("p99", list(zip(tl.t_s, tl.p99_s)))]
        values = [v for _, s in lat for _, v in s if v is not None]
        fmt = seconds_axis(values)
        charts.append(line_chart(f"{name}: latency over time", lat, x_label="time since start (s)", y_label="latency",
                                 y_fmt=fmt, bands=bands, point_label=lambda s, x, y, f=fmt: f"{s} at {x:.0f} s = {f(y)}"))
        charts.append(line_chart(f"{name}: throughput and errors", [("ok/s", list(zip(tl.t_s, tl.ok_per_s))),
                                                                    ("errors/s", list(zip(tl.t_s, tl.errors_per_s)))],
                                 x_label="time since start (s)", y_label="requests per second", bands=bands,
                                 point_label=lambda s, x, y: f"{s} at {x:.0f} s = {y:.2f}"))
        lag = [v for v in tl.lag_p99_s if v is not None]
        lag_fmt = seconds_axis(lag)
        charts.append(line_chart(f"{name}: schedule lag p99", [("lag p99", list(zip(tl.t_s, tl.lag_p99_s)))],
                                 x_label="time since start (s)", y_label="sent minus intended", y_fmt=lag_fmt, bands=bands,
                                 point_label=lambda s, x, y, f=lag_fmt: f"{s} at {x:.0f} s = {f(y)}"))
    return charts


def _accuracy_bars(title: str, cands: dict[str, Any], tags: list[str]) -> str:
    names = list(cands)
    series, intervals, notes = [], [], []
    for n in names:
        groups = cands[n].get("by_tag") or {}
        series.append((n, [(groups.get(t) or {}).get("value") for t in tags]))
        intervals.append([((groups.get(t) or {}).get("ci_low"), (groups.get(t) or {}).get("ci_high"))
                          if (groups.get(t) or {}).get("ci_low") is not None else None for t in tags])
    for t in tags:
        smallest = min(((cands[n].get("by_tag") or {}).get(t) or {}).get("n") or 0 for n in names)
        notes.append(f"n={smallest}, small group" if smallest < SMALL_GROUP else "")
    return hbar_chart(title, tags, series, x_label=f"accuracy (whiskers: 95% interval; faint: fewer than {SMALL_GROUP} scored items)", x_fmt=lambda v: f"{100 * v:.0f}%",
                      intervals=intervals, notes=notes, x_max=1.0)


def quality_charts(summary: dict[str, Any]) -> list[str]:
    cands = summary["candidates"]
    if not any(c.get("accuracy") for c in cands.values()):
        return []
    all_tags = sorted({t for c in cands.values() for t in (c.get("by_tag") or {})})
    tags = [t for t in all_tags if not t.startswith("input:")]
    lengths = sorted((t for t in all_tags if t.startswith("input:")), key=_length_order)
    charts = []
    if tags:
        charts.append(_accuracy_bars("Accuracy by tag", cands, tags))
    if lengths:
        charts.append(_accuracy_bars("Accuracy by prompt length", cands, lengths))
    frontier = (summary.get("decision") or {}).get("pareto_frontier") or []
    points = []
    for n, c in cands.items():
        acc = (c.get("accuracy") or {}).get("value")
        cost = (c.get("cost_usd") or {}).get("per_correct")
        p95 = (c.get("latency_s") or {}).get("p95")
        points.append((n, cost, acc, f"{n}: accuracy {100 * acc:.1f}%, {fmt_usd(cost)} per correct task, p95 {fmt_s(p95)}"
                       if acc is not None and cost is not None else n))
    charts.append(scatter_chart("Accuracy vs cost per correct task (dashed: Pareto frontier)", points,
                                x_label="cost per correct task (USD)", y_label="accuracy", x_fmt=lambda v: fmt_usd(v),
                                y_fmt=lambda v: f"{100 * v:.0f}%", frontier=frontier,
                                note=lambda n: f"p95 {fmt_s((cands[n].get('latency_s') or {}).get('p95'))}"))
    return charts


def _length_order(tag: str) -> float:
    text = tag.split(":", 1)[1].lstrip("<>")
    head = text.split("-")[0]
    try:
        return float(head.rstrip("k")) * (1000 if head.endswith("k") else 1) - (0.5 if tag.startswith("input:<") else 0)
    except ValueError:
        return math.inf


def error_charts(summary: dict[str, Any]) -> list[str]:
    cands = summary["candidates"]
    names = list(cands)
    charts = []
    request = sorted({k for c in cands.values() for k in (c["requests"]["errors"] or {})})
    if request:
        charts.append(hbar_chart("Request errors by class (the whole run)", request,
                                 [(n, [float((cands[n]["requests"]["errors"] or {}).get(k, 0)) for k in request]) for n in names],
                                 x_label="requests"))
    quality = sorted({k for c in cands.values() for k in (c.get("quality_error_classes") or {})},
                     key=lambda k: -sum((c.get("quality_error_classes") or {}).get(k, 0) for c in cands.values()))[:20]
    if quality:
        charts.append(hbar_chart("Quality failures by class (measurement window)", quality,
                                 [(n, [float((cands[n].get("quality_error_classes") or {}).get(k, 0)) for k in quality]) for n in names],
                                 x_label="scored responses"))
    return charts


def cost_chart(summary: dict[str, Any]) -> str:
    cands = summary["candidates"]
    return hbar_chart("Cost", ["per task", "per correct task"],
                      [(n, [c["cost_usd"].get("per_request") or 0.0, c["cost_usd"].get("per_correct") or 0.0])
                       for n, c in cands.items()], x_label="USD", x_fmt=fmt_usd)


__all__ = ["cost_chart", "error_charts", "needed_samples", "quality_charts", "spectrum_chart", "time_charts"]
