"""Console view of a sweep: the capacity curve and projection per candidate (pure)."""

from __future__ import annotations

from typing import Any

from .report import fmt_rate, fmt_s, fmt_usd, render_table


def sweep_table(result: dict[str, Any]) -> str:
    out = []
    for name, c in result["candidates"].items():
        rows = []
        for r in c["curve"]:
            rows.append((
                f"{r['offered_qps']:g}" + (f" (r{r['repeat']})" if r["repeat"] else ""),
                [fmt_rate(r["achieved_qps"]), fmt_s(r["latency_s"]["p50"]), fmt_s(r["latency_s"]["p95"]), fmt_s(r["latency_s"]["p99"]),
                 "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%",
                 "-" if r["goodput_rps"] is None else f"{r['goodput_rps']:.2f}",
                 "-" if r["error_ratio"] is None else f"{100 * r['error_ratio']:.1f}%",
                 "pass" if r["passed"] else "FAIL"],
            ))
        best = c["max_sustainable_qps"]
        out.append(f"{name}: max sustainable {'-' if best is None else f'{best:g} req/s'} ({c['how']})")
        if rows:
            out.append(render_table(["offered qps", "achieved", "p50", "p95", "p99", "accuracy", "goodput", "errors", "SLO"], rows))
        for r in c["curve"]:
            if not r["passed"]:
                out.append(f"  {r['offered_qps']:g} req/s failed: " + "; ".join(r["reasons"]))
        if c.get("knee_qps"):
            out.append(f"  knee: p95 latency rises past 1.5x its low-load value at {c['knee_qps']:g} req/s")
        p = c.get("projection")
        if p:
            line = f"  projection: {p['replicas']} replica(s) for a {p['peak_qps']:g} req/s peak with {100 * p['headroom']:.0f}% headroom"
            api = p["api"]
            line += f"; API cost {fmt_usd(api['cost_per_task'])}/task, {fmt_usd(api['cost_per_correct'])}/correct task"
            if api.get("monthly_usd") is not None:
                line += f", {fmt_usd(api['monthly_usd'])}/month at {p['tasks_per_day']:g} tasks/day"
            out.append(line)
            if p.get("self_hosted"):
                sh = p["self_hosted"]
                out.append(f"  self-hosted: {sh['replicas']} x ${sh['replica_hour_usd']:g}/h = {fmt_usd(sh['monthly_usd'])}/month, "
                           f"{fmt_usd(sh['cost_per_task'])}/task, {fmt_usd(sh['cost_per_correct'])}/correct task")
        out.append("")
    return "\n".join(out).rstrip()
