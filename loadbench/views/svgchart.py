"""Static SVG charts for self-contained reports: lines, bars with intervals, scatter (pure; no network, no JS)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#4b5563")
W, H = 640, 340
L, R, T, B = 74, 150, 34, 74

Fmt = Callable[[float], str]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:  # the axis must reach the largest value
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def seconds_axis(values: Sequence[float]) -> Fmt:
    """One unit for a whole axis of seconds (never '0us' beside '1.00s'): picked by the largest value."""
    top = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)
    if top >= 1.0:
        return lambda v: f"{v:.3g}s"
    if top >= 1e-3:
        return lambda v: f"{v * 1e3:.3g}ms"
    return lambda v: f"{v * 1e6:.3g}µs"


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded span of the x axis (warm-up, a capacity bracket) with a label."""

    x0: float
    x1: float
    label: str
    color: str = "#f3f4f6"


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal line across the plot (an SLO bound) with a label."""

    y: float
    label: str
    color: str = "#b91c1c"


def _open(title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(title)}" data-chart="{escape(title)}">'
            '<style>.t{font:11px sans-serif;fill:#374151}.a{font:12px sans-serif;fill:#111827}.h{font:bold 13px sans-serif;fill:#111827}'
            '.n{font:10px sans-serif;fill:#6b7280}</style>'
            f'<text x="{L}" y="18" class="h">{escape(title)}</text>')


def _empty(title: str, why: str = "") -> str:
    return (_open(title) + f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="a" data-empty="1">'
            f'no data for {escape(title)}{": " + escape(why) if why else ""}</text></svg>')


def _axes(out: list[str], x_label: str, y_label: str) -> None:
    out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#6b7280"/>')
    out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#6b7280"/>')
    # the axis titles sit below the tick labels and left of them, never over them
    out.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle" class="a">{escape(x_label)}</text>')
    mid = (T + H - B) / 2
    out.append(f'<text x="14" y="{mid:.0f}" text-anchor="middle" class="a" transform="rotate(-90 14 {mid:.0f})">{escape(y_label)}</text>')


def _legend(out: list[str], labels: list[str], dashed: bool = False) -> None:
    for i, label in enumerate(labels):
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{W - R + 12}" y="{T + 18 * i}" width="12" height="3" fill="{color}"/>')
        out.append(f'<text x="{W - R + 30}" y="{T + 18 * i + 5}" class="t">{escape(label[:18])}</text>')


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], *, x_label: str, y_label: str,
               y_fmt: Fmt | None = None, x_ticks: list[tuple[float, str]] | None = None, x_fmt: Fmt = lambda v: f"{v:g}",
               point_label: Callable[[str, float, float], str] | None = None, bands: Sequence[Band] = (),
               rules: Sequence[Rule] = (), weak: Callable[[str, float], bool] | None = None, y_seconds: bool = False) -> str:
    """Lines with points.  `point_label(series, x, y)` is a point's tooltip; `weak(series, x)` marks a
    point the data cannot support (drawn hollow, its segment dashed); `bands` shade x spans; `rules`
    draw horizontal bounds."""
    pts = [p for _, s in series for p in s if p[1] is not None and math.isfinite(p[1])]
    if not pts:
        return _empty(title)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts] + [r.y for r in rules]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    yt = _nice_ticks(0.0, max(ys) * 1.05 if max(ys) > 0 else 1.0)
    y0, y1 = yt[0], yt[-1]
    fmt_y = y_fmt or (seconds_axis(yt) if y_seconds else (lambda v: f"{v:g}"))

    def sx(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def sy(y: float) -> float:
        return H - B - (y - y0) / (y1 - y0 or 1) * (H - T - B)

    out = [_open(title)]
    for band in bands:
        bx0, bx1 = sx(max(band.x0, x0)), sx(min(band.x1, x1))
        if bx1 > bx0:
            out.append(f'<rect x="{bx0:.1f}" y="{T}" width="{bx1 - bx0:.1f}" height="{H - B - T}" fill="{band.color}">'
                       f"<title>{escape(band.label)}</title></rect>")
            out.append(f'<text x="{bx0 + 3:.1f}" y="{T + 11}" class="n">{escape(band.label)}</text>')
    for y in yt:
        out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" class="t">{escape(fmt_y(y))}</text>')
    ticks = x_ticks if x_ticks is not None else [(x, x_fmt(x)) for x in _nice_ticks(x0, x1)]
    for x, label in ticks:
        if x0 - 1e-9 <= x <= x1 + 1e-9:
            out.append(f'<line x1="{sx(x):.1f}" y1="{H - B}" x2="{sx(x):.1f}" y2="{H - B + 4}" stroke="#6b7280"/>')
            out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle" class="t">{escape(label)}</text>')
    for rule in rules:
        out.append(f'<line x1="{L}" y1="{sy(rule.y):.1f}" x2="{W - R}" y2="{sy(rule.y):.1f}" stroke="{rule.color}" '
                   f'stroke-dasharray="6 3"><title>{escape(rule.label)}</title></line>')
        out.append(f'<text x="{W - R - 4}" y="{sy(rule.y) - 4:.1f}" text-anchor="end" class="n">{escape(rule.label)}</text>')
    _axes(out, x_label, y_label)
    label_of = point_label or (lambda name, x, y: f"{name}: {x_fmt(x)}, {fmt_y(y)}")
    for i, (name, s) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        clean = [(x, y) for x, y in s if y is not None and math.isfinite(y)]
        for j in range(1, len(clean)):
            (xa, ya), (xb, yb) = clean[j - 1], clean[j]
            dash = ' stroke-dasharray="3 3"' if weak is not None and weak(name, xb) else ""
            out.append(f'<line x1="{sx(xa):.1f}" y1="{sy(ya):.1f}" x2="{sx(xb):.1f}" y2="{sy(yb):.1f}" stroke="{color}" '
                       f'stroke-width="2"{dash}/>')
        for x, y in clean:
            fill = "#ffffff" if weak is not None and weak(name, x) else color
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.8" fill="{fill}" stroke="{color}">'
                       f"<title>{escape(label_of(name, x, y))}</title></circle>")
    _legend(out, [name for name, _ in series])
    out.append("</svg>")
    return "".join(out)


def hbar_chart(title: str, categories: list[str], series: list[tuple[str, list[float | None]]], *, x_label: str,
               x_fmt: Fmt = lambda v: f"{v:g}", intervals: list[list[tuple[float, float] | None]] | None = None,
               notes: list[str] | None = None, x_max: float | None = None) -> str:
    """Horizontal bars (labels stay whole), optionally with an interval whisker per bar and a note per
    category (e.g. 'n=4, small')."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not categories or not values:
        return _empty(title)
    height = max(H, T + B + 14 * len(categories) * max(len(series), 1) + 8 * len(categories))
    left = 8 + 6.2 * min(max(len(c) for c in categories), 46)
    top_value = x_max if x_max is not None else max(values + [hi for ivs in intervals or [] for iv in ivs if iv for hi in iv[1:]])
    xt = _nice_ticks(0.0, top_value if top_value > 0 else 1.0)
    xmax = xt[-1] or 1.0
    right = W - R

    def sx(v: float) -> float:
        return left + v / xmax * (right - left)

    row_h = (height - T - B) / len(categories)
    bar_h = max(3.0, row_h * 0.8 / max(len(series), 1))
    out = [_open(title).replace(f'viewBox="0 0 {W} {H}" width="{W}" height="{H}"', f'viewBox="0 0 {W} {height}" width="{W}" height="{height}"')]
    for x in xt:
        out.append(f'<line x1="{sx(x):.1f}" y1="{T}" x2="{sx(x):.1f}" y2="{height - B}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{height - B + 16}" text-anchor="middle" class="t">{escape(x_fmt(x))}</text>')
    for ci, cat in enumerate(categories):
        gy = T + ci * row_h + row_h * 0.1
        short = cat if len(cat) <= 46 else cat[:45] + "…"
        note = f" ({notes[ci]})" if notes and notes[ci] else ""
        out.append(f'<text x="{left - 6:.1f}" y="{gy + row_h * 0.45:.1f}" text-anchor="end" class="t"><title>{escape(cat + note)}</title>'
                   f"{escape(short)}</text>")
        for si, (name, vs) in enumerate(series):
            v = vs[ci] if ci < len(vs) else None
            color = PALETTE[si % len(PALETTE)]
            y = gy + si * bar_h
            if v is None:
                continue
            out.append(f'<rect x="{left:.1f}" y="{y:.1f}" width="{max(sx(v) - left, 0.5):.1f}" height="{bar_h - 1:.1f}" fill="{color}" '
                       f'fill-opacity="{0.45 if notes and notes[ci] else 1}"><title>{escape(name)} / {escape(cat)}: {escape(x_fmt(v))}{escape(note)}'
                       "</title></rect>")
            iv = intervals[si][ci] if intervals and si < len(intervals) and ci < len(intervals[si]) else None
            if iv is not None:
                cy = y + (bar_h - 1) / 2
                out.append(f'<line x1="{sx(iv[0]):.1f}" y1="{cy:.1f}" x2="{sx(iv[1]):.1f}" y2="{cy:.1f}" stroke="#111827"/>')
                for end in iv:
                    out.append(f'<line x1="{sx(end):.1f}" y1="{cy - 3:.1f}" x2="{sx(end):.1f}" y2="{cy + 3:.1f}" stroke="#111827"/>')
    out.append(f'<line x1="{left:.1f}" y1="{T}" x2="{left:.1f}" y2="{height - B}" stroke="#6b7280"/>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{height - 12}" text-anchor="middle" class="a">{escape(x_label)}</text>')
    for si, (name, _) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        out.append(f'<rect x="{W - R + 12}" y="{T + 18 * si}" width="12" height="10" fill="{color}"/>')
        out.append(f'<text x="{W - R + 30}" y="{T + 18 * si + 9}" class="t">{escape(name[:18])}</text>')
    out.append("</svg>")
    return "".join(out)


def scatter_chart(title: str, points: list[tuple[str, float, float, str]], *, x_label: str, y_label: str,
                  x_fmt: Fmt, y_fmt: Fmt, frontier: list[str] | None = None, note: Callable[[str], str] | None = None) -> str:
    """Labelled points (name, x, y, tooltip); `frontier` names the points to join (a Pareto front);
    `note(name)` adds a few words beside a point's name."""
    clean = [(n, x, y, tip) for n, x, y, tip in points if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    if not clean:
        return _empty(title, "needs accuracy and cost for at least one candidate")
    xs, ys = [p[1] for p in clean], [p[2] for p in clean]
    xt = _nice_ticks(0.0, max(xs) * 1.1 if max(xs) > 0 else 1.0)
    lo_y = max(0.0, min(ys) - 0.1)
    yt = _nice_ticks(lo_y, min(1.0, max(ys) + 0.05) if max(ys) <= 1 else max(ys) * 1.05)

    def sx(v: float) -> float:
        return L + v / (xt[-1] or 1.0) * (W - L - R)

    def sy(v: float) -> float:
        return H - B - (v - yt[0]) / ((yt[-1] - yt[0]) or 1.0) * (H - T - B)

    out = [_open(title)]
    for y in yt:
        out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" class="t">{escape(y_fmt(y))}</text>')
    for x in xt:
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle" class="t">{escape(x_fmt(x))}</text>')
    _axes(out, x_label, y_label)
    front = [p for p in sorted(clean, key=lambda p: p[1]) if frontier and p[0] in frontier]
    if len(front) >= 2:
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (_, x, y, _) in enumerate(front))
        out.append(f'<path d="{path}" fill="none" stroke="#9ca3af" stroke-dasharray="4 3"><title>Pareto frontier</title></path>')
    for i, (name, x, y, tip) in enumerate(clean):
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="6" fill="{color}"><title>{escape(tip)}</title></circle>')
        extra = f" · {note(name)}" if note is not None and note(name) else ""
        out.append(f'<text x="{sx(x) + 9:.1f}" y="{sy(y) + 4:.1f}" class="t">{escape(name + extra)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, categories: list[str], series: list[tuple[str, list[float]]], *,
              y_fmt: Fmt = lambda v: f"{v:g}", y_label: str = "") -> str:
    """Grouped vertical bars for a few short categories (long labels: use hbar_chart)."""
    return hbar_chart(title, categories, [(n, list(vs)) for n, vs in series], x_label=y_label, x_fmt=y_fmt)


__all__ = ["Band", "Rule", "bar_chart", "hbar_chart", "line_chart", "scatter_chart", "seconds_axis"]
