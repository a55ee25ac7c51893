"""Run validity: was the driver itself the bottleneck?  Invalid runs are never findings (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ValidityLimits:
    max_schedule_lag_p99_s: float = 0.010
    max_event_loop_lag_p99_s: float = 0.020
    min_achieved_ratio: float = 0.99
    max_loop_cpu_ratio: float = 0.90
    allow_drops: bool = False


def _lag_statistic(count: int | None) -> str | None:
    """The schedule-lag percentile the gate reads: p99 needs about 1,000 requests to mean
    anything; with fewer, one late send would be the p99 and decide the run, so a lower
    percentile with enough samples behind it stands in (the limit stays the same)."""
    if count is None or count >= 1000:
        return "p99"
    if count >= 100:
        return "p90"
    return "p50" if count >= 20 else None


def assess(summary: dict[str, Any], limits: ValidityLimits, loop_cpu_ratio: float | None) -> dict[str, Any]:
    """Reasons the run is invalid, per candidate and for the client as a whole."""
    reasons: list[str] = []
    per_candidate: dict[str, list[str]] = {}
    lag = (summary.get("client") or {}).get("event_loop_lag_s") or {}
    if lag.get("p99") is not None and lag["p99"] > limits.max_event_loop_lag_p99_s:
        reasons.append(f"event-loop lag p99 {lag['p99'] * 1e3:.1f} ms > {limits.max_event_loop_lag_p99_s * 1e3:g} ms: "
                       "the sending loop was blocked")
    if loop_cpu_ratio is not None and loop_cpu_ratio > limits.max_loop_cpu_ratio:
        reasons.append(f"the sending thread used {100 * loop_cpu_ratio:.0f}% of a core (limit "
                       f"{100 * limits.max_loop_cpu_ratio:.0f}%): the client is near saturation; use fewer candidates per run or a lower rate")
    stop = (summary.get("outcome") or {}).get("stop_reason") or ""
    if stop.startswith("aborted"):
        reasons.append(f"the run was {stop}")
    open_loop = summary.get("mode") == "open-loop"
    for name, c in (summary.get("candidates") or {}).items():
        mine = []
        sl = c.get("schedule_lag_s") or {}
        stat = _lag_statistic(sl.get("count"))
        if stat is not None and sl.get(stat) is not None and sl[stat] > limits.max_schedule_lag_p99_s:
            mine.append(f"schedule lag {stat} {sl[stat] * 1e3:.1f} ms > {limits.max_schedule_lag_p99_s * 1e3:g} ms: requests left "
                        "late (the client, or its max_in_flight cap, could not keep up)")
        offered, achieved = c.get("offered_rate_qps"), c.get("achieved_rate_qps")
        if open_loop and offered and achieved is not None and achieved < limits.min_achieved_ratio * offered:
            mine.append(f"achieved {achieved:.2f} req/s is below {100 * limits.min_achieved_ratio:g}% of the offered {offered:.2f} req/s")
        dropped = (c.get("window") or {}).get("dropped", 0)
        if dropped and not limits.allow_drops:
            mine.append(f"{dropped} requests dropped at the max_in_flight cap")
        if c.get("histogram_overflows"):
            mine.append(f"{c['histogram_overflows']} values fell outside the HDR histogram range")
        if mine:
            per_candidate[name] = mine
    return {"valid": not reasons and not per_candidate, "reasons": reasons, "candidates": per_candidate,
            "loop_cpu_ratio": loop_cpu_ratio,
            "limits": {"max_schedule_lag_p99_s": limits.max_schedule_lag_p99_s, "max_event_loop_lag_p99_s": limits.max_event_loop_lag_p99_s,
                       "min_achieved_ratio": limits.min_achieved_ratio, "max_loop_cpu_ratio": limits.max_loop_cpu_ratio}}
