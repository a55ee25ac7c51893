"""Intervals cover what they claim, verdicts are three-valued, samples-needed is right, McNemar is fast."""

import math
import time

import numpy as np
import pytest

from loadbench.stats.confidence import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    binomial_two_sided_p,
    interval_verdict,
    mean_interval,
    per_look_confidence,
    percentile_needed,
    percentile_verdict,
    quantile_ranks,
    trend,
    wilson_interval,
)


@pytest.mark.parametrize("n, q, expected_high", [
    (59, 0.95, None),   # two-sided 95%: a zero-miss p95 needs 72 samples (59 is the one-sided MLPerf figure)
    (72, 0.95, 72),
    (300, 0.999, None),  # a p99.9 from 300 samples has no upper bound
    (30, 0.95, None),
])
def test_quantile_upper_rank(n, q, expected_high):
    assert quantile_ranks(n, q)[1] == expected_high


def test_one_sided_mlperf_figures():
    # at 90% two-sided (5% per side) the zero-miss figures are MLPerf's early-stopping minimums
    assert quantile_ranks(59, 0.95, 0.90)[1] == 59 and quantile_ranks(58, 0.95, 0.90)[1] is None
    assert quantile_ranks(299, 0.99, 0.90)[1] == 299 and quantile_ranks(298, 0.99, 0.90)[1] is None


@pytest.mark.parametrize("n, below, q, verdict", [
    (300, 300, 0.95, PASS),
    (300, 0, 0.95, FAIL),
    (300, 285, 0.95, INCONCLUSIVE),  # exactly on the bound
    (30, 30, 0.95, INCONCLUSIVE),
    (300, 300, 0.999, INCONCLUSIVE),
    (10_000, 9_700, 0.95, PASS),
    (10_000, 9_300, 0.95, FAIL),
])
def test_percentile_verdict(n, below, q, verdict):
    assert percentile_verdict(n, below, q, good_if_below=True) == verdict


def test_samples_needed_is_the_smallest_that_decides():
    need = percentile_needed(30, 30, 0.95, True)
    assert need == 72
    assert percentile_verdict(need, need, 0.95, True) == PASS
    assert percentile_verdict(need - 1, need - 1, 0.95, True) == INCONCLUSIVE
    assert percentile_needed(300, 285, 0.95, True) is None  # on the threshold: no n settles it


@pytest.mark.parametrize("low, high, op, verdict", [
    (0.1, 0.2, "<=", PASS), (0.1, 0.4, "<=", INCONCLUSIVE), (0.31, 0.4, "<=", FAIL),
    (0.8, 0.9, ">=", PASS), (0.6, 0.9, ">=", INCONCLUSIVE), (0.5, 0.69, ">=", FAIL),
    (None, 0.2, "<=", INCONCLUSIVE),
])
def test_interval_verdict(low, high, op, verdict):
    assert interval_verdict(low, high, 0.3 if op == "<=" else 0.7, op) == verdict


def _coverage(draws: int, covers) -> float:
    return sum(1 for _ in range(draws) if covers()) / draws


def test_percentile_interval_covers_about_95_percent():
    rng = np.random.default_rng(11)
    n, q = 200, 0.95
    truth = -math.log(1 - q)  # the exponential's 95th percentile
    low, high = quantile_ranks(n, q)

    def covers() -> bool:
        xs = np.sort(rng.exponential(1.0, n))
        return xs[low - 1] <= truth <= xs[high - 1]

    cov = _coverage(2000, covers)
    assert 0.93 <= cov <= 0.99, cov  # exact order-statistic bounds are slightly conservative, never 60% or 100%


def test_wilson_and_mean_intervals_cover_about_95_percent():
    rng = np.random.default_rng(5)
    p, n = 0.3, 150

    def wilson_covers() -> bool:
        lo, hi = wilson_interval(int(rng.binomial(n, p)), n)
        return lo <= p <= hi

    def mean_covers() -> bool:
        xs = rng.exponential(2.0, 100)
        lo, hi = mean_interval(float(xs.mean()), float(xs.std()), 100)
        return lo <= 2.0 <= hi

    assert 0.92 <= _coverage(2000, wilson_covers) <= 0.98
    assert 0.91 <= _coverage(2000, mean_covers) <= 0.98


def test_bonferroni_split():
    assert per_look_confidence(0.95, 5) == pytest.approx(0.99)
    assert per_look_confidence(0.95, 1) == pytest.approx(0.95)


def test_mcnemar_is_exact_and_constant_time():
    assert binomial_two_sided_p(0, 10) == pytest.approx(2 / 1024)
    assert binomial_two_sided_p(5, 10) == 1.0
    start = time.perf_counter()
    for k in (4_900, 490_000, 4_900_000):
        p = binomial_two_sided_p(k, 10 * k // 49 * 0 + round(k / 0.49))
        assert 0.0 <= p <= 1.0
    assert time.perf_counter() - start < 1.0  # the big-integer sum took 5.7 s at 10,000 pairs


def test_trend_sees_a_building_queue_and_not_a_steady_one():
    rng = np.random.default_rng(3)
    ts = np.sort(rng.uniform(0, 20, 2000))
    steady = 0.1 + rng.exponential(0.02, ts.size)
    building = 0.1 + 0.03 * ts + rng.exponential(0.02, ts.size)
    assert not trend(ts, steady).building
    t = trend(ts, building)
    assert t.building and t.rise_ratio > 1.0
    assert not trend(ts[:10], building[:10]).building  # too few samples: no claim


def test_dispersion_sees_clustered_misses_and_not_independent_ones():
    from loadbench.stats.confidence import design_effect, dispersion

    rng = np.random.default_rng(8)
    ts = np.arange(2000) / 50.0
    independent = rng.random(2000) < 0.05
    clustered = np.zeros(2000, dtype=bool)
    for start in rng.choice(1900, 5, replace=False):  # 5 bursts of 20 consecutive misses: a queue that stayed long
        clustered[start:start + 20] = True
    assert dispersion(ts, independent) < 2.5
    assert dispersion(ts, clustered) > 4
    assert dispersion(ts, np.zeros(2000, dtype=bool)) == 1.0  # nothing to measure: no claim
    slow_drift = 0.1 + 0.05 * np.sin(ts / 5) + rng.normal(0, 0.005, 2000)
    assert design_effect(ts, slow_drift) > 10 and design_effect(ts, rng.normal(0.1, 0.01, 2000)) < 3
