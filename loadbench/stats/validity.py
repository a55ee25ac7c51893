"""Run validity: was the driver itself the bottleneck?  Invalid runs are never findings (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A client stall counts when it is large against what the SLO can resolve: 10% of the
# tightest latency bound (a 30 ms stall cannot move a 300 ms p95 verdict).
STALL_SHARE_OF_BOUND = 0.10


@dataclass(frozen=True, slots=True)
class ValidityLimits:
    max_schedule_lag_p99_s: float = 0.010
    max_event_loop_lag_p99_s: float = 0.020
    min_achieved_ratio: float = 0.99
    max_loop_cpu_ratio: float = 0.90
    allow_drops: bool = False
    proportional: bool | None = True


def _lag_statistic(count: int | None) -> str | None:
    """The schedule-lag percentile the gate reads: p99 needs about 1,000 requests to mean
    anything; with fewer, one late send would be the p99 and decide the run, so a lower
    percentile with enough samples behind it stands in (the limit stays the same)."""
    if count is None or count >= 1000:
        return "p99"
    if count >= 100:
        return "p90"
    return "p50" if count >= 20 else None


def lag_tolerances(limits: ValidityLimits, clauses: list[Any] | None) -> tuple[float, float]:
    """(event-loop lag limit, schedule lag limit) in seconds: the configured limits, raised to
    10% of the tightest latency SLO bound when there is one (what could move a verdict)."""
    if limits.proportional is False:
        return limits.max_event_loop_lag_p99_s, limits.max_schedule_lag_p99_s
    bounds = [c.threshold for c in clauses or [] if c.is_latency and c.op in ("<=", "<") and c.metric != "schedule_lag"]
    floor = STALL_SHARE_OF_BOUND * min(bounds) if bounds else 0.0
    return max(limits.max_event_loop_lag_p99_s, floor), max(limits.max_schedule_lag_p99_s, floor)


def _tail_share(clauses: list[Any] | None) -> float | None:
    """The tail the tightest percentile clause looks at (0.05 for a p95), or None without one."""
    shares = [1 - c.quantile for c in clauses or [] if c.is_latency and c.quantile is not None]
    return min(shares) if shares else None


def assess(summary: dict[str, Any], limits: ValidityLimits, loop_cpu_ratio: float | None,
           clauses: list[Any] | None = None, late_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Reasons the run is invalid, per candidate and for the client as a whole.

    With latency SLO clauses the lag gates are proportional: a stall counts only above 10% of
    the tightest bound, and late sends invalidate a candidate only when there are enough of
    them to move its tightest percentile (more than a tenth of that percentile's tail).
    `late_counts` gives, per candidate, how many requests left later than the tolerance.
    """
    reasons: list[str] = []
    per_candidate: dict[str, list[str]] = {}
    loop_limit_s, sched_limit_s = lag_tolerances(limits, clauses)
    tail = _tail_share(clauses) if limits.proportional is not False else None
    lag = (summary.get("client") or {}).get("event_loop_lag_s") or {}
    if lag.get("p99") is not None and lag["p99"] > loop_limit_s:
        reasons.append(f"event-loop lag p99 {lag['p99'] * 1e3:.1f} ms > {loop_limit_s * 1e3:g} ms: "
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
        late = (late_counts or {}).get(name)
        if tail is not None and late is not None and sl.get("count"):
            allowed = max(1, int(0.1 * tail * sl["count"]))
            if late > allowed:
                mine.append(f"{late} of {sl['count']} requests left more than {sched_limit_s * 1e3:g} ms late (at most {allowed} "
                            f"could not move a verdict on the tightest percentile): the client, or its max_in_flight cap, "
                            f"could not keep up; they are the records whose sent_ns - intended_ns exceeds {sched_limit_s * 1e3:g} ms")
        else:
            stat = _lag_statistic(sl.get("count"))
            if stat is not None and sl.get(stat) is not None and sl[stat] > sched_limit_s:
                mine.append(f"schedule lag {stat} {sl[stat] * 1e3:.1f} ms > {sched_limit_s * 1e3:g} ms: requests left "
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
            "late_requests": late_counts or {},
            "limits": {"max_schedule_lag_p99_s": limits.max_schedule_lag_p99_s, "max_event_loop_lag_p99_s": limits.max_event_loop_lag_p99_s,
                       "effective_schedule_lag_s": sched_limit_s, "effective_event_loop_lag_s": loop_limit_s,
                       "min_achieved_ratio": limits.min_achieved_ratio, "max_loop_cpu_ratio": limits.max_loop_cpu_ratio}}
