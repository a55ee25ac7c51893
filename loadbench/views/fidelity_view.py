"""'Does the public benchmark predict your traffic?': the fidelity section for the console and the reports."""

from __future__ import annotations

from typing import Any


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def variant_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    cands = {n: c["by_variant"] for n, c in summary["candidates"].items() if c.get("by_variant")}
    if not cands:
        return [], []
    variants = list(next(iter(cands.values())))
    rows = []
    for v in variants:
        cells = []
        for per in cands.values():
            e = per.get(v) or {}
            cells.append("-" if not e.get("n") else f"{_pct(e['accuracy'])} [{_pct(e['ci_low'])}-{_pct(e['ci_high'])}] n={e['n']}")
        rows.append([v, *cells])
    return ["variant", *cands], rows


def fidelity_lines(summary: dict[str, Any]) -> list[str]:
    """The section in plain words: format gaps, contamination signals, public scores against the domain."""
    fid = summary.get("fidelity")
    if not fid:
        return []
    lines = []
    for name, c in summary["candidates"].items():
        gap = c.get("format_gap")
        if gap:
            sig = "significant" if gap["significant"] else "not significant"
            lines.append(f"  {name}: format gap {100 * gap['difference']:.1f} points between {gap['between'][0]} and "
                         f"{gap['between'][1]} [{100 * gap['ci_low']:+.1f}, {100 * gap['ci_high']:+.1f}] on {gap['n']} paired items, "
                         f"McNemar p={gap['p_value']:.3g} ({sig})")
        for signal in ("shuffle_drop", "masked_option_match"):
            e = (c.get("contamination") or {}).get(signal)
            if e:
                lines.append(f"    {name}: {'SIGNAL' if e['signal'] else 'no signal'} ({signal.replace('_', ' ')}): "
                             f"{e['verdict'].split(': ', 1)[-1]}")
    for flip in fid.get("ranking_flips") or []:
        lines.append(f"  ranking flips between variants: {flip['text']}")
    for bench, e in (fid.get("public") or {}).items():
        tau = e.get("kendall_tau_accuracy")
        head = (f"  {bench}: ranks {' > '.join(e['ranking_public'])}; your traffic ranks "
                f"{' > '.join(e.get('ranking_accuracy') or [])} (Kendall tau {tau:+.2f})" if tau is not None else f"  {bench}")
        lines.append(head)
        for inv in e["inversions"]:
            p = "-" if inv["p_value"] is None else f"{inv['p_value']:.3g}"
            lines.append(f"    INVERSION: {bench} puts {inv['public_better']} ahead, your traffic puts {inv['domain_better']} "
                         f"ahead by {100 * inv['accuracy_diff']:.1f} points (paired p={p}, "
                         f"{'significant' if inv['significant'] else 'not significant'})")
    if not lines:
        return []
    return ["Does the public benchmark predict your traffic? (signals, not proof; docs/fidelity.md)", *lines]
