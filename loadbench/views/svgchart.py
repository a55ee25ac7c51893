"""Tiny static SVG charts for self-contained reports: lines (optionally log-x) and bars (pure)."""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#4b5563")
W, H = 640, 340
L, R, T, B = 70, 150, 34, 70


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


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]]]], *, x_label: str, y_label: str,
               y_fmt: Callable[[float], str] = lambda v: f"{v:g}", x_ticks: list[tuple[float, str]] | None = None,
               x_fmt: Callable[[float], str] = lambda v: f"{v:g}") -> str:
    pts = [p for _, s in series for p in s if p[1] is not None and math.isfinite(p[1])]
    if not pts:
        return _empty(title)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    yt = _nice_ticks(0.0, max(ys) * 1.05 if max(ys) > 0 else 1.0)
    y0, y1 = yt[0], yt[-1]

    def sx(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def sy(y: float) -> float:
        return H - B - (y - y0) / (y1 - y0 or 1) * (H - T - B)

    out = [_open(title)]
    for y in yt:
        out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" class="t">{escape(y_fmt(y))}</text>')
    ticks = x_ticks if x_ticks is not None else [(x, x_fmt(x)) for x in _nice_ticks(x0, x1)]
    for x, label in ticks:
        if x0 <= x <= x1:
            out.append(f'<line x1="{sx(x):.1f}" y1="{H - B}" x2="{sx(x):.1f}" y2="{H - B + 4}" stroke="#6b7280"/>')
            out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle" class="t">{escape(label)}</text>')
    out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#6b7280"/>')
    out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#6b7280"/>')
    out.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - B + 34}" text-anchor="middle" class="a">{escape(x_label)}</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2:.0f}" text-anchor="middle" class="a" transform="rotate(-90 16 {(T + H - B) / 2:.0f})">{escape(y_label)}</text>')
    for i, (label, s) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        clean = [(x, y) for x, y in s if y is not None and math.isfinite(y)]
        if not clean:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(clean))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in clean:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"><title>{escape(label)}: {escape(x_fmt(x))}, {escape(y_fmt(y))}</title></circle>')
        out.append(f'<rect x="{W - R + 12}" y="{T + 18 * i}" width="12" height="3" fill="{color}"/>')
        out.append(f'<text x="{W - R + 30}" y="{T + 18 * i + 5}" class="t">{escape(label[:18])}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, categories: list[str], series: list[tuple[str, list[float]]], *,
              y_fmt: Callable[[float], str] = lambda v: f"{v:g}", y_label: str = "") -> str:
    values = [v for _, vs in series for v in vs if v is not None]
    if not categories or not values:
        return _empty(title)
    yt = _nice_ticks(0.0, max(values) * 1.05 if max(values) > 0 else 1.0)
    y1 = yt[-1] or 1.0
    group_w = (W - L - R) / len(categories)
    bar_w = max(2.0, group_w * 0.8 / max(len(series), 1))

    def sy(y: float) -> float:
        return H - B - y / y1 * (H - T - B)

    out = [_open(title)]
    for y in yt:
        out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end" class="t">{escape(y_fmt(y))}</text>')
    for ci, cat in enumerate(categories):
        gx = L + ci * group_w + group_w * 0.1
        for si, (label, vs) in enumerate(series):
            v = vs[ci] if ci < len(vs) and vs[ci] is not None else 0.0
            color = PALETTE[si % len(PALETTE)]
            out.append(f'<rect x="{gx + si * bar_w:.1f}" y="{sy(v):.1f}" width="{bar_w - 1:.1f}" height="{H - B - sy(v):.1f}" fill="{color}">'
                       f"<title>{escape(label)} / {escape(cat)}: {escape(y_fmt(v))}</title></rect>")
        short = cat if len(cat) <= 16 else cat[:15] + "…"
        cx, cy = L + (ci + 0.5) * group_w, H - B + 12
        out.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" class="t" transform="rotate(-35 {cx:.1f} {cy})">{escape(short)}</text>')
    out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#6b7280"/>')
    if y_label:
        out.append(f'<text x="16" y="{(T + H - B) / 2:.0f}" text-anchor="middle" class="a" transform="rotate(-90 16 {(T + H - B) / 2:.0f})">{escape(y_label)}</text>')
    for si, (label, _) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        out.append(f'<rect x="{W - R + 12}" y="{T + 18 * si}" width="12" height="10" fill="{color}"/>')
        out.append(f'<text x="{W - R + 30}" y="{T + 18 * si + 9}" class="t">{escape(label[:18])}</text>')
    out.append("</svg>")
    return "".join(out)


def _open(title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">'
            '<style>.t{font:11px sans-serif;fill:#374151}.a{font:12px sans-serif;fill:#111827}.h{font:bold 13px sans-serif;fill:#111827}</style>'
            f'<text x="{L}" y="18" class="h">{escape(title)}</text>')


def _empty(title: str) -> str:
    return _open(title) + f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="a">no data for {escape(title)}</text></svg>'
