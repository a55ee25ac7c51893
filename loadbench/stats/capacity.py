"""Capacity from a sweep's steps: pooled evidence per rate, the bracket and the estimate (pure).

Every step's SLO clauses carry counts (samples at or below a latency bound, successes of a
ratio).  Steps at the same offered rate pool those counts; each rate gets a three-valued
verdict from the pooled evidence.  Latency and error ratios grow with load, so the capacity
(the rate at which the SLO statistic crosses its bound) lies above every rate that passed
with confidence and below every rate that failed with confidence: that is the bracket.
The point estimate is where a monotone (isotonic) fit of each clause's statistic against
rate crosses its bound, the lowest over the clauses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .confidence import FAIL, INCONCLUSIVE, PASS, interval_verdict, percentile_verdict, wilson_interval
from .slo import overall_verdict

PROPORTION_METRICS = ("error_ratio", "accuracy", "goodput_ratio", "session_pass_rate", "task_pass_rate")


@dataclass(slots=True)
class RateEvidence:
    """What all steps at one offered rate showed, pooled."""

    rate: float
    steps: int = 0
    requests: int = 0
    achieved_qps: list[float] = field(default_factory=list)
    clauses: dict[str, dict[str, Any]] = field(default_factory=dict)  # clause text -> pooled counts
    step_verdicts: list[str] = field(default_factory=list)
    building: bool = False  # the latest step at this rate still had a queue building
    invalid: int = 0
    weighted_qps: float = 0.0  # sum of realised rate x requests, for the mean

    @property
    def realised_qps(self) -> float:
        """What the steps at this offered rate actually sent (request-weighted mean): the
        Poisson draw of a short window can sit several percent off the offered rate."""
        return self.weighted_qps / self.requests if self.requests else self.rate


def _pool_clause(acc: dict[str, Any], r: dict[str, Any]) -> None:
    acc.setdefault("clause", r["clause"])
    acc.setdefault("metric", r["metric"])
    acc.setdefault("stat", r["stat"])
    acc.setdefault("op", r["op"])
    acc.setdefault("threshold", r["threshold"])
    n = r.get("n") or 0
    acc["n"] = acc.get("n", 0) + n
    if r.get("at_or_below") is not None:
        acc["at_or_below"] = acc.get("at_or_below", 0) + r["at_or_below"]
    elif r["metric"] in PROPORTION_METRICS and r["stat"] in ("value", "attempted") and r.get("measured") is not None:
        acc["successes"] = acc.get("successes", 0) + round(r["measured"] * n)
    acc.setdefault("verdicts", []).append(r.get("verdict", INCONCLUSIVE))
    if r.get("measured") is not None:
        acc.setdefault("values", []).append((r["measured"], n))


def pool(steps: list[dict[str, Any]]) -> list[RateEvidence]:
    """Steps (rate, verdict, clauses, building, valid, achieved_qps, requests) grouped by rate."""
    by_rate: dict[float, RateEvidence] = {}
    for s in sorted(steps, key=lambda s: (s["rate"], s.get("order", 0))):
        ev = by_rate.setdefault(s["rate"], RateEvidence(s["rate"]))
        if not s.get("valid", True):
            ev.invalid += 1
            continue
        ev.steps += 1
        if s.get("achieved_qps") is not None:
            ev.achieved_qps.append(s["achieved_qps"])
            ev.weighted_qps += s["achieved_qps"] * (s.get("requests") or 0)
            ev.requests += s.get("requests") or 0
        ev.step_verdicts.append(s["verdict"])
        ev.building = bool(s.get("building"))
        for r in s.get("clauses") or []:
            _pool_clause(ev.clauses.setdefault(r["clause"], {}), r)
    return [by_rate[r] for r in sorted(by_rate)]


def clause_verdict(c: dict[str, Any], confidence: float) -> str:
    """A pooled clause's verdict: recomputed from pooled counts where it has them."""
    n = c.get("n") or 0
    if "at_or_below" in c and n:
        q = float(c["stat"][1:]) / 100
        return percentile_verdict(n, c["at_or_below"], q, c["op"] in ("<=", "<"), confidence)
    if "successes" in c and n:
        ci = wilson_interval(c["successes"], n, confidence)
        return interval_verdict(ci[0], ci[1], c["threshold"], c["op"]) if ci else INCONCLUSIVE
    verdicts = c.get("verdicts") or [INCONCLUSIVE]
    if FAIL in verdicts and c["stat"] == "max":
        return FAIL  # a maximum over the pooled steps is over the bound if any step's was
    return verdicts[0] if len(set(verdicts)) == 1 else INCONCLUSIVE


def rate_verdict(ev: RateEvidence, confidence: float, has_slo: bool) -> str:
    if ev.steps == 0:
        return INCONCLUSIVE
    if ev.building:
        return FAIL  # still building a queue after every extension: not sustainable
    if not has_slo:
        return overall_verdict(ev.step_verdicts)
    return overall_verdict([clause_verdict(c, confidence) for c in ev.clauses.values()])


def badness(c: dict[str, Any]) -> tuple[float, float, float] | None:
    """(statistic, bound, weight) oriented so that larger is worse and the SLO holds while
    statistic <= bound; None when the clause has nothing to fit."""
    n = c.get("n") or 0
    if "at_or_below" in c and n:
        q = float(c["stat"][1:]) / 100
        share_over = 1 - c["at_or_below"] / n
        if c["op"] in ("<=", "<"):
            return share_over, 1 - q, n
        return -share_over, -(1 - q), n
    values = c.get("values") or []
    if not values:
        return None
    total_n = sum(w for _, w in values) or len(values)
    mean = sum(v * (w or 1) for v, w in values) / total_n
    if c["op"] in ("<=", "<"):
        return mean, c["threshold"], max(total_n, 1)
    return -mean, -c["threshold"], max(total_n, 1)


def isotonic(values: list[float], weights: list[float]) -> list[float]:
    """Pool-adjacent-violators: the non-decreasing fit closest in weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values, weights):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out += [mean] * int(count)
    return out


def crossing(rates: list[float], fitted: list[float], bound: float) -> float | None:
    """Where the fitted statistic first exceeds the bound, interpolated between rates."""
    for i, value in enumerate(fitted):
        if value > bound:
            if i == 0:
                return rates[0] if value == bound else None  # already over at the lowest rate
            lo_r, hi_r, lo_v = rates[i - 1], rates[i], fitted[i - 1]
            if value == lo_v:
                return lo_r
            return lo_r + (hi_r - lo_r) * (bound - lo_v) / (value - lo_v)
    return None


def estimate(evidence: list[RateEvidence]) -> float | None:
    """The lowest rate at which any clause's monotone fit crosses its bound."""
    texts = {t for ev in evidence for t in ev.clauses}
    found = []
    for text in texts:
        rows = sorted(((ev.realised_qps, b) for ev in evidence if text in ev.clauses and (b := badness(ev.clauses[text])) is not None),
                      key=lambda row: row[0])
        if len(rows) < 2:
            continue
        rates = [r for r, _ in rows]
        fitted = isotonic([b[0] for _, b in rows], [b[2] for _, b in rows])
        x = crossing(rates, fitted, rows[0][1][1])
        if x is not None:
            found.append(x)
    return min(found) if found else None


def bracket(evidence: list[RateEvidence], confidence: float, has_slo: bool, bracket_confidence: float) -> dict[str, Any]:
    """The capacity bracket (in realised req/s) and the estimate from every rate's pooled verdict."""
    verdicts = {ev.rate: rate_verdict(ev, confidence, has_slo) for ev in evidence}
    failed = sorted((ev for ev in evidence if verdicts[ev.rate] == FAIL), key=lambda ev: ev.realised_qps)
    high = failed[0] if failed else None
    passed = sorted((ev for ev in evidence if verdicts[ev.rate] == PASS
                     and (high is None or ev.realised_qps < high.realised_qps)), key=lambda ev: ev.realised_qps)
    low = passed[-1] if passed else None
    low_x = low.realised_qps if low else None
    high_x = high.realised_qps if high else None
    point = estimate(evidence) if has_slo else None
    if point is not None:
        point = max(point, low_x) if low_x is not None else point
        point = min(point, high_x) if high_x is not None else point
    if point is None and low_x is not None and high_x is not None:
        point = (low_x * high_x) ** 0.5
    return {
        "estimate_qps": point, "low_qps": low_x, "high_qps": high_x, "bounded": high is not None,
        "low_offered_qps": low.rate if low else None, "high_offered_qps": high.rate if high else None,
        "confidence": bracket_confidence, "rate_verdicts": {f"{r:g}": v for r, v in sorted(verdicts.items())},
        "rates_are": "realised (what the steps sent), not offered",
    }


def width_ratio(cap: dict[str, Any]) -> float | None:
    """The bracket's width relative to the estimate (None while it is open on a side)."""
    low, high, est = cap.get("low_qps"), cap.get("high_qps"), cap.get("estimate_qps")
    if low is None or high is None or not est:
        return None
    return (high - low) / est
