"""Confidence behind verdicts: percentile, proportion and mean intervals, samples needed, sequential looks (pure).

A verdict is pass or fail only when the whole interval lies on one side of the threshold;
otherwise it is inconclusive, with the number of samples that would settle it if the
measured value held.  Percentile intervals are the distribution-free order-statistic bounds
(the duals of Clopper-Pearson): with n samples, the q-quantile lies between the l-th and the
u-th smallest sample with the stated confidence, whatever the latency distribution.  The
same binomial argument is MLPerf LoadGen's early-stopping criterion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scipy.stats import binom, norm, t

CONFIDENCE = 0.95
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
MAX_NEEDED = 1_000_000_000  # beyond this the estimate sits on the threshold: "cannot be settled"


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 at 95%."""
    return float(norm.ppf(1 - (1 - confidence) / 2))


def per_look_confidence(confidence: float, looks: int) -> float:
    """Bonferroni split of the error over a fixed number of looks (or of steps)."""
    return 1 - (1 - confidence) / max(looks, 1)


def quantile_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) such that X(l) <= x_q <= X(u) with the confidence; None where no
    sample is far enough out (e.g. a p99.9 from 300 samples has no upper bound)."""
    if n <= 0:
        return None, None
    a = (1 - confidence) / 2
    low = int(binom.ppf(a, n, q))  # P(Bin(n, q) < low) <= a
    high = int(binom.isf(a, n, q)) + 1  # P(Bin(n, q) >= high) <= a
    return (low if low >= 1 else None), (high if high <= n else None)


def percentile_verdict(n: int, at_or_below: int, q: float, good_if_below: bool, confidence: float = CONFIDENCE) -> str:
    """Verdict on 'the q-quantile is <= T' (good_if_below) or '>= T', given how many of n
    samples were at or below T."""
    low, high = quantile_ranks(n, q, confidence)
    if good_if_below:
        if high is not None and at_or_below >= high:
            return PASS  # even the upper bound X(u) is <= T
        if low is not None and at_or_below < low:
            return FAIL  # even the lower bound X(l) is > T
        return INCONCLUSIVE
    if low is not None and at_or_below < low:
        return PASS
    if high is not None and at_or_below >= high:
        return FAIL
    return INCONCLUSIVE


def nearest_rank(values: list[float], q: float) -> float | None:
    """The q-quantile of a few raw values by the nearest-rank rule (NaNs ignored); None when empty."""
    clean = sorted(v for v in values if not math.isnan(v))
    if not clean:
        return None
    return clean[max(0, math.ceil(q * len(clean)) - 1)]


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    if n <= 0:
        return None
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(mean: float, stddev: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Normal interval of a mean (the central limit theorem; fine from a few dozen samples)."""
    if n <= 1:
        return None
    half = z_value(confidence) * stddev / math.sqrt(n)
    return mean - half, mean + half


def interval_verdict(low: float | None, high: float | None, threshold: float, op: str) -> str:
    """pass when the whole interval is on the good side of the threshold, fail when wholly on the bad side."""
    if low is None or high is None:
        return INCONCLUSIVE
    if op in ("<=", "<"):
        good = high < threshold if op == "<" else high <= threshold
        bad = low >= threshold if op == "<" else low > threshold
    else:
        good = low > threshold if op == ">" else low >= threshold
        bad = high <= threshold if op == ">" else high < threshold
    return PASS if good else FAIL if bad else INCONCLUSIVE


def samples_needed(decided_at: Callable[[int], bool], n_now: int) -> int | None:
    """The smallest n > n_now at which `decided_at(n)` (the verdict with the measured rate or
    spread held fixed) is decided; None when even MAX_NEEDED would not settle it."""
    n = max(n_now, 1)
    hi = n * 2
    while not decided_at(hi):
        if hi >= MAX_NEEDED:
            return None
        hi = min(hi * 2, MAX_NEEDED)
    lo = n  # undecided here (the caller asks only when it is)
    while hi - lo > max(1, lo // 100):  # one percent is precise enough for advice
        mid = (lo + hi) // 2
        if decided_at(mid):
            hi = mid
        else:
            lo = mid
    return hi


def percentile_needed(n: int, at_or_below: int, q: float, good_if_below: bool, confidence: float = CONFIDENCE) -> int | None:
    share = at_or_below / n if n else 1.0

    def decided(m: int) -> bool:
        return percentile_verdict(m, round(share * m), q, good_if_below, confidence) != INCONCLUSIVE

    return samples_needed(decided, n)


def proportion_needed(successes: int, n: int, threshold: float, op: str, confidence: float = CONFIDENCE) -> int | None:
    share = successes / n if n else 0.0

    def decided(m: int) -> bool:
        ci = wilson_interval(round(share * m), m, confidence)
        return ci is not None and interval_verdict(ci[0], ci[1], threshold, op) != INCONCLUSIVE

    return samples_needed(decided, n)


def mean_needed(mean: float, stddev: float, n: int, threshold: float, confidence: float = CONFIDENCE) -> int | None:
    gap = abs(mean - threshold)
    if gap == 0:
        return None
    need = math.ceil((z_value(confidence) * stddev / gap) ** 2) + 1
    return min(need, MAX_NEEDED) if need > n else n + 1


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials at p = 0.5 (McNemar's exact test),
    in constant time (scipy's regularised incomplete beta, not a sum over n terms)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    return float(min(1.0, 2 * binom.cdf(k, n, 0.5)))


@dataclass(frozen=True, slots=True)
class Trend:
    """Is a series still rising over a step?  Batch means regressed on time."""

    slope_per_s: float | None
    rise_ratio: float | None  # fitted rise over the step / overall mean
    p_value: float | None
    building: bool
    batch_means: list[float]


def trend(times_s: list[float] | tuple[float, ...], values: list[float] | tuple[float, ...], *, batches: int = 8,
          alpha: float = 0.01, min_rise: float = 0.15) -> Trend:
    """Batch means over equal time slices, then a one-sided t-test on the OLS slope.

    Batching absorbs most of a queue's autocorrelation (consecutive latencies are far from
    independent near saturation); `min_rise` keeps a statistically significant but immaterial
    drift (a few percent) from counting as a queue that is still building.
    """
    import numpy as np

    ts = np.asarray(times_s, dtype=np.float64)
    vs = np.asarray(values, dtype=np.float64)
    if ts.size < batches * 5:
        return Trend(None, None, None, False, [])
    lo, hi = float(ts.min()), float(ts.max())
    if hi <= lo:
        return Trend(None, None, None, False, [])
    edges = np.linspace(lo, hi, batches + 1)
    which = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, batches - 1)
    counts = np.bincount(which, minlength=batches)
    if (counts < 3).any():
        return Trend(None, None, None, False, [])
    means = np.bincount(which, weights=vs, minlength=batches) / counts
    mids = (edges[:-1] + edges[1:]) / 2
    x = mids - mids.mean()
    slope = float((x * (means - means.mean())).sum() / (x * x).sum())
    resid = means - means.mean() - slope * x
    dof = batches - 2
    se = math.sqrt(float((resid * resid).sum()) / dof / float((x * x).sum()))
    overall = float(vs.mean())
    rise = slope * (hi - lo) / overall if overall > 0 else None
    if se == 0:
        p = 0.0 if slope > 0 else 1.0
    else:
        p = float(t.sf(slope / se, dof))
    building = p < alpha and rise is not None and rise > min_rise
    return Trend(slope, rise, p, building, [float(m) for m in means])


def dispersion(times_s: list[float], over: list[bool], *, min_batch: int = 30, max_batches: int = 12) -> float:
    """How much the share of requests over a bound varies between time slices beyond what
    independent requests would give (batch-means overdispersion, >= 1).

    Near saturation consecutive latencies move together (a queue that is long stays long
    for a while), so n requests carry the evidence of about n / dispersion independent ones.
    Verdicts from such a window deflate their counts by it before the binomial test.
    """
    import numpy as np

    parts = _time_batches(times_s, over, min_batch, max_batches)
    if parts is None:
        return 1.0
    flags = np.concatenate(parts)
    batches = len(parts)
    k = np.array([p.sum() for p in parts])
    m = np.array([p.size for p in parts], dtype=np.float64)
    share = flags.mean()
    if share <= 0.0 or share >= 1.0:
        return 1.0
    chi2 = float((((k - m * share) ** 2) / (m * share * (1 - share))).sum())
    return max(1.0, chi2 / (batches - 1))


def design_effect(times_s: list[float], values: list[float], *, min_batch: int = 30, max_batches: int = 12) -> float:
    """How many requests one independent request is worth, from a continuous series (latency):
    batch size x variance of the batch means / variance of the values (batch means, >= 1).

    Where no request crossed a bound the over/under share has no spread to measure, yet a queue
    near saturation still makes neighbours alike; the latencies themselves show it."""
    import numpy as np

    parts = _time_batches(times_s, values, min_batch, max_batches)
    if parts is None:
        return 1.0
    vs = np.concatenate(parts)
    total_var = float(vs.var())
    if total_var <= 0:
        return 1.0
    means = np.array([p.mean() for p in parts])
    return max(1.0, len(vs) / len(parts) * float(means.var(ddof=1)) / total_var)


def _time_batches(times_s: Any, values: Any, min_batch: int, max_batches: int) -> list[Any] | None:
    """The values in time order, cut into 4..max_batches consecutive batches of >= min_batch."""
    import numpy as np

    batches = min(max_batches, len(times_s) // min_batch)
    if batches < 4:
        return None
    order = np.argsort(np.asarray(times_s, dtype=np.float64), kind="stable")
    return list(np.array_split(np.asarray(values, dtype=np.float64)[order], batches))
