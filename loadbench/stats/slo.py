"""SLO clauses: parsing, three-valued evaluation with confidence, and the per-request check behind goodput (pure).

docs/slo.md says what each verdict means.  `ok` is the point estimate against the threshold,
kept for compatibility; `verdict` is pass | fail | inconclusive from the clause's interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config.slo_clauses import LATENCY_METRICS, OPS, Clause
from ..pacing.records import OK, RequestResult
from .confidence import (
    CONFIDENCE,
    FAIL,
    INCONCLUSIVE,
    PASS,
    interval_verdict,
    mean_interval,
    mean_needed,
    percentile_needed,
    percentile_verdict,
    proportion_needed,
    quantile_ranks,
    wilson_interval,
)


def _min_samples(stat: str) -> int:
    """Samples before a percentile is worth reporting at all: about 10 beyond it."""
    if stat in ("max", "mean"):
        return 1
    q = float(stat[1:]) / 100
    return max(20, round(10 / (1 - q)))


def _latency_result(clause: Clause, c: dict[str, Any], hist: Any, confidence: float) -> dict[str, Any]:
    """A latency clause from the candidate's histogram (µs): the statistic, its interval, the verdict."""
    from .hdr import count_at_or_below, mean_stddev, value_at_percentile, values_at_ranks

    out: dict[str, Any] = {"measured": None, "n": 0, "ci_low": None, "ci_high": None, "verdict": INCONCLUSIVE}
    if hist is None:  # a summary read back without its histograms: the stored point estimate only
        stats = c.get(LATENCY_METRICS[clause.metric]) or {}
        key = {"p99.9": "p999"}.get(clause.stat, clause.stat)
        out.update(measured=stats.get(key), n=stats.get("count") or 0, note="no histogram: point estimate only")
        return out
    n = hist.get_total_count()
    out["n"] = n
    if n == 0:
        out["note"] = "not measured"
        return out
    threshold_us = clause.threshold * 1e6
    good_if_below = clause.op in ("<=", "<")
    max_us = hist.get_max_value()
    if clause.stat == "max":  # a fact of this run, not an estimate of a population
        out.update(measured=max_us / 1e6, ci_low=max_us / 1e6, ci_high=max_us / 1e6)
        out["verdict"] = interval_verdict(max_us, max_us, threshold_us, clause.op)
        return out
    if clause.stat == "mean":
        mean, sd = mean_stddev(hist)
        out["measured"] = mean / 1e6
        ci = mean_interval(mean, sd, n, confidence)
        if ci is not None:
            out.update(ci_low=ci[0] / 1e6, ci_high=ci[1] / 1e6)
            out["verdict"] = interval_verdict(ci[0], ci[1], threshold_us, clause.op)
            if out["verdict"] == INCONCLUSIVE:
                out["needed_samples"] = mean_needed(mean, sd, n, threshold_us, confidence)
        return out
    q = clause.quantile or 0.5
    out["measured"] = value_at_percentile(hist, 100 * q) / 1e6
    low, high = quantile_ranks(n, q, confidence)
    ranked = values_at_ranks(hist, [r for r in (low, high) if r is not None])
    values = iter(min(v, max_us) for v in ranked)
    out["ci_low"] = next(values) / 1e6 if low is not None else None
    out["ci_high"] = next(values) / 1e6 if high is not None else None
    # strictly below the bound for '<' and '>=': the count at the bound minus one µs
    bound_us = int(threshold_us) - (1 if clause.op in ("<", ">=") else 0)
    below = count_at_or_below(hist, bound_us)
    out["at_or_below"] = below
    out["verdict"] = percentile_verdict(n, below, q, good_if_below, confidence)
    if out["verdict"] == INCONCLUSIVE:
        out["needed_samples"] = percentile_needed(n, below, q, good_if_below, confidence)
    return out


def _proportion(clause: Clause, c: dict[str, Any]) -> tuple[float | None, int, int] | None:
    """(value, successes, n) for clauses that are a share of something."""
    if clause.metric == "error_ratio":
        w = c.get("window") or {}
        n = w.get("sent") or 0
        return c.get("error_ratio"), w.get("error_total") or 0, n
    if clause.metric == "accuracy" and clause.stat in ("value", "attempted"):
        acc = c.get("accuracy") or {}
        n = acc.get("n") or 0
        if clause.stat == "attempted":
            n += acc.get("skipped") or 0
        return acc.get("value" if clause.stat == "value" else "attempted_value"), acc.get("pass") or 0, n
    if clause.metric == "goodput_ratio":
        g = c.get("goodput") or {}
        return g.get("fraction"), g.get("good") or 0, g.get("attempted") or 0
    if clause.metric in ("session_pass_rate", "task_pass_rate") and clause.stat == "value":
        view = (c.get("sessions") or {}).get("sessions" if clause.metric == "session_pass_rate" else "tasks") or {}
        passed = view.get("passed") or 0
        return view.get("pass_rate"), passed, passed + (view.get("failed") or 0)
    return None


def _cost_interval(c: dict[str, Any], confidence: float) -> tuple[float | None, tuple[float, float] | None, int]:
    cost = c.get("cost_usd") or {}
    n = (c.get("window") or {}).get("sent") or 0
    mean, sd = cost.get("per_request"), cost.get("per_request_stddev")
    if mean is None or sd is None:
        return mean, None, n
    return mean, mean_interval(mean, sd, n, confidence), n


def _other_result(clause: Clause, c: dict[str, Any], confidence: float) -> dict[str, Any]:
    out: dict[str, Any] = {"measured": None, "n": 0, "ci_low": None, "ci_high": None, "verdict": INCONCLUSIVE}
    share = _proportion(clause, c)
    if share is not None:
        value, k, n = share
        out.update(measured=value, n=n)
        ci = wilson_interval(k, n, confidence)
        if ci is not None and value is not None:
            out.update(ci_low=ci[0], ci_high=ci[1], verdict=interval_verdict(ci[0], ci[1], clause.threshold, clause.op))
            if out["verdict"] == INCONCLUSIVE:
                out["needed_samples"] = proportion_needed(k, n, clause.threshold, clause.op, confidence)
        return out
    if clause.metric == "cost_per_task":
        mean, ci, n = _cost_interval(c, confidence)
        out.update(measured=mean, n=n)
        if ci is not None:
            out.update(ci_low=ci[0], ci_high=ci[1], verdict=interval_verdict(ci[0], ci[1], clause.threshold, clause.op))
        return out
    if clause.metric == "cost_per_correct":
        # Bonferroni over the two parts: cost per request and accuracy each at half the error.
        half = 1 - (1 - confidence) / 2
        acc = c.get("accuracy") or {}
        mean, cost_ci, _ = _cost_interval(c, half)
        acc_ci = wilson_interval(acc.get("pass") or 0, acc.get("n") or 0, half)
        out.update(measured=(c.get("cost_usd") or {}).get("per_correct"), n=acc.get("pass") or 0)
        if cost_ci is not None and acc_ci is not None and acc_ci[0] > 0:
            low, high = max(cost_ci[0], 0.0) / acc_ci[1], cost_ci[1] / acc_ci[0]
            out.update(ci_low=low, ci_high=high, verdict=interval_verdict(low, high, clause.threshold, clause.op))
        return out
    # accuracy ci_low / ci_high, session and task pass-rate bounds: already confidence bounds
    value, n = _stored_bound(clause, c)
    out.update(measured=value, n=n or 0)
    if value is not None:
        out.update(ci_low=value, ci_high=value, verdict=interval_verdict(value, value, clause.threshold, clause.op))
    return out


def _stored_bound(clause: Clause, c: dict[str, Any]) -> tuple[float | None, int | None]:
    if clause.metric == "accuracy":
        acc = c.get("accuracy") or {}
        return acc.get(clause.stat), acc.get("n")
    view = (c.get("sessions") or {}).get("sessions" if clause.metric == "session_pass_rate" else "tasks") or {}
    ci = view.get("pass_rate_ci") or [None, None]
    scored = (view.get("passed") or 0) + (view.get("failed") or 0)
    return {"ci_low": ci[0], "ci_high": ci[1]}.get(clause.stat), scored if view else None


def clause_result(clause: Clause, c: dict[str, Any], hists: dict[str, Any] | None = None,
                  confidence: float = CONFIDENCE) -> dict[str, Any]:
    """One clause: measured value, interval, three-valued verdict, samples to settle it."""
    if clause.is_latency:
        core = _latency_result(clause, c, None if hists is None else hists.get(clause.metric), confidence)
    else:
        core = _other_result(clause, c, confidence)
    value = core["measured"]
    entry: dict[str, Any] = {"clause": clause.text, "metric": clause.metric, "stat": clause.stat, "op": clause.op,
                             "threshold": clause.threshold, **core,
                             "ok": value is not None and OPS[clause.op](value, clause.threshold)}
    if value is None:
        entry.setdefault("note", "not measured")
    if clause.is_latency:
        entry["sufficient"] = entry["n"] >= _min_samples(clause.stat)
    if entry["verdict"] == INCONCLUSIVE and "needed_samples" in entry:
        needed = entry["needed_samples"]
        entry["more_samples"] = None if needed is None else max(needed - entry["n"], 1)
    return entry


def overall_verdict(verdicts: list[str]) -> str:
    return FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS


def evaluate(clauses: list[Clause], c: dict[str, Any], hists: dict[str, Any] | None = None,
             confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Every clause with its value, interval and verdict.  `verdict` is fail if any clause
    fails, else inconclusive if any is, else pass; `ok` (point estimates only) is kept for
    compatibility."""
    results = [clause_result(clause, c, hists, confidence) for clause in clauses]
    undecided = [r for r in results if r["verdict"] == INCONCLUSIVE]
    more = [r.get("more_samples") for r in undecided]
    return {
        "verdict": overall_verdict([r["verdict"] for r in results]),
        "confidence": confidence,
        "ok": all(r["ok"] for r in results),
        "failing": [r["clause"] for r in results if r["verdict"] == FAIL],
        "inconclusive": [r["clause"] for r in undecided],
        "more_samples": (None if any(m is None for m in more) else max(more)) if more else 0,  # type: ignore[type-var]
        "point_failing": [r["clause"] for r in results if not r["ok"]],
        "clauses": results,
    }


_RECORD_FIELDS = {"latency": "latency_ns", "service_time": "service_ns", "ttft": "ttft_ns", "ttfc": "ttfc_ns",
                  "schedule_lag": "schedule_lag_ns", "itl": "tpot_ns", "tpot": "tpot_ns"}


def record_value_ns(metric: str, r: RequestResult) -> int:
    """One request's own value of a latency metric (ns; -1 when not measurable for it)."""
    return int(getattr(r, _RECORD_FIELDS[metric]))


def request_check(clauses: list[Clause]) -> Callable[[RequestResult], bool] | None:
    """A request is on time when it meets every latency clause's threshold itself
    (DistServe-style goodput: the percentile applies to the population, the bound to each request)."""
    latency = [c for c in clauses if c.is_latency and c.op in ("<=", "<")]
    if not latency:
        return None
    bounds = [(c.metric, c.threshold, c.op == "<") for c in latency]

    def on_time(r: RequestResult) -> bool:
        if r.status != OK:
            return False
        for metric, limit, strict in bounds:
            if metric == "latency":
                v = r.latency_ns
            elif metric == "service_time":
                v = r.service_ns
            elif metric == "ttft":
                v = r.ttft_ns
            elif metric == "ttfc":
                v = r.ttfc_ns
            elif metric == "schedule_lag":
                v = r.schedule_lag_ns
            else:  # itl, tpot: the request's own time per output token
                v = r.tpot_ns
            if v < 0:
                continue  # not measurable for this request (e.g. one output token): not held against it
            s = v / 1e9
            if s > limit or (strict and s == limit):
                return False
        return True

    return on_time
