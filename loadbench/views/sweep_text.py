"""Console view of a sweep: the capacity curve and projection per candidate (pure)."""

from __future__ import annotations

from typing import Any

from .text import fmt_rate, fmt_s, fmt_usd, render_table


def _verdict_word(r: dict[str, Any]) -> str:
    v = r.get("verdict") or ("pass" if r.get("passed") else "fail")
    return "FAIL" if v == "fail" else v


def capacity_line(c: dict[str, Any]) -> str:
    """The sweep's answer in one line: the bracket, the estimate, and what stopped the search."""
    cap = c.get("capacity")
    best = c.get("max_sustainable_qps")
    if cap is None:  # a sweep.json from before capacity brackets
        return f"max sustainable {'-' if best is None else f'{best:g} req/s'}"
    conf = f"{100 * (cap.get('confidence') or 0.95):g}%"
    low, high, est = cap.get("low_qps"), cap.get("high_qps"), cap.get("estimate_qps")
    stop = cap.get("stopped_because") or cap.get("stopped_by") or ""
    if low is None and high is None:
        return f"capacity not found: no rate was decided ({stop})"
    if low is None:
        return f"capacity below {high:.1f} req/s: the lowest rate tried failed ({stop})"
    offered = f" (offered {cap['low_offered_qps']:g})" if cap.get("low_offered_qps") is not None else ""
    if high is None:
        return (f"capacity at least {low:.1f} req/s{offered}; no rate failed: extend the ladder "
                f"(max sustainable {best:g} req/s passed with {conf} confidence)")
    point = f", estimate {est:.1f} req/s" if est is not None else ""
    return (f"capacity between {low:.1f} and {high:.1f} req/s realised ({conf} confidence{point}); max sustainable "
            f"{best:g} req/s (passed with confidence); stopped: {stop}")


def server_at_knee(c: dict[str, Any]) -> str | None:
    """What the deployment's own gauges showed at the knee (else at the first rate that did not pass)."""
    curve = [r for r in c.get("curve") or [] if r.get("server")]
    if not curve:
        return None
    at = c.get("knee_qps")
    if at is None:
        at = next((r["offered_qps"] for r in curve if _verdict_word(r) != "pass"), None)
    if at is None:
        return None
    before = [r for r in curve if r["offered_qps"] < at]
    step = next((r for r in curve if r["offered_qps"] >= at), None)
    if step is None:
        return None

    def looks(r: dict[str, Any]) -> str:
        s = r["server"]
        parts = []
        if s.get("waiting_max") is not None:
            parts.append(f"up to {s['waiting_max']:g} waiting")
        if s.get("running_max") is not None:
            parts.append(f"{s['running_max']:g} running")
        if s.get("kv_usage_max") is not None:
            parts.append(f"KV cache {100 * s['kv_usage_max']:.0f}% full")
        return ", ".join(parts) or "no known gauges"

    text = f"at {step['offered_qps']:g} req/s {looks(step)}"
    if before:
        text += f" (at {before[-1]['offered_qps']:g} req/s: {looks(before[-1])})"
    s = step["server"]
    if (s.get("waiting_max") or 0) > 0 and (not before or (before[-1]["server"].get("waiting_max") or 0) == 0):
        text += ": requests start to queue in the server"
    elif (s.get("kv_usage_max") or 0) >= 0.95:
        text += ": the KV cache is full"
    return text


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
                 "-" if r.get("requests_sent") is None else str(r["requests_sent"]),
                 "yes" if r.get("steady_state", True) else "no",
                 _verdict_word(r)],
            ))
        out.append(f"{name}: {capacity_line(c)}")
        if rows:
            out.append(render_table(["offered qps", "realised", "p50", "p95", "p99", "accuracy", "goodput", "errors",
                                     "requests", "steady", "SLO"], rows))
        for r in c["curve"]:
            if _verdict_word(r) != "pass" and r.get("reasons"):
                out.append(f"  {r['offered_qps']:g} req/s {_verdict_word(r)}: " + "; ".join(r["reasons"]))
        out.append(f"  how: {c['how']}")
        if c.get("knee_qps"):
            out.append(f"  knee: p95 latency rises past 1.5x its low-load value at {c['knee_qps']:g} req/s")
        server_line = server_at_knee(c)
        if server_line:
            out.append(f"  server: {server_line}")
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
