"""Pooled evidence per rate, the capacity bracket and the isotonic estimate (pure, table-tested)."""

import pytest

from loadbench.stats.capacity import bracket, crossing, estimate, isotonic, pool, width_ratio


def clause(n: int, over: int, verdict: str = "inconclusive") -> dict:
    return {"clause": "latency p95 <= 300ms", "metric": "latency", "stat": "p95", "op": "<=", "threshold": 0.3,
            "n": n, "at_or_below": n - over, "measured": 0.2, "verdict": verdict}


def step(rate: float, n: int, over: int, verdict: str = "inconclusive", **kw) -> dict:
    return {"rate": rate, "verdict": verdict, "clauses": [clause(n, over, verdict)], "requests": n, "achieved_qps": rate, **kw}


@pytest.mark.parametrize("values, weights, fitted", [
    ([1, 2, 3], [1, 1, 1], [1, 2, 3]),
    ([3, 1, 2], [1, 1, 1], [2, 2, 2]),
    ([1, 3, 2, 4], [1, 1, 1, 1], [1, 2.5, 2.5, 4]),
    ([0.0, 0.2, 0.1], [100, 100, 300], [0.0, 0.125, 0.125]),
])
def test_isotonic(values, weights, fitted):
    assert isotonic(values, weights) == pytest.approx(fitted)


@pytest.mark.parametrize("rates, fitted, bound, expected", [
    ([10, 20, 30], [0.0, 0.02, 0.10], 0.05, 20 + 10 * 0.03 / 0.08),
    ([10, 20], [0.0, 0.01], 0.05, None),  # never crosses inside the ladder
    ([10, 20], [0.2, 0.3], 0.05, None),  # already over at the lowest rate
])
def test_crossing(rates, fitted, bound, expected):
    got = crossing(rates, fitted, bound)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_repeats_pool_their_evidence_instead_of_all_must_pass():
    # two repeats that each could not decide alone: 100 samples with 1 over the p95 bound each;
    # pooled, 200 samples with 2 over pass at 95%
    ev = pool([step(30, 100, 1, order=1), step(30, 100, 1, order=2)])
    cap = bracket(ev, 0.95, True, 0.95)
    assert ev[0].steps == 2 and ev[0].clauses["latency p95 <= 300ms"]["n"] == 200
    assert cap["rate_verdicts"]["30"] == "pass"


def test_bracket_from_passes_and_fails_and_split_verdicts_still_answer():
    steps = [step(15, 400, 0), step(26, 400, 2), step(30, 400, 8), step(33, 400, 18), step(36, 400, 60),
             step(39, 400, 150), step(36, 400, 15, order=9)]  # a split repeat at 36 pools with the other
    cap = bracket(pool(steps), 0.95, True, 0.95)
    assert cap["low_qps"] == 30 and cap["high_qps"] == 36 and cap["bounded"]
    assert 30 <= cap["estimate_qps"] <= 36
    assert width_ratio(cap) == pytest.approx(6 / cap["estimate_qps"])


def test_a_ladder_that_never_fails_is_unbounded():
    cap = bracket(pool([step(4, 300, 0), step(8, 300, 0), step(16, 300, 0), step(32, 300, 0)]), 0.95, True, 0.95)
    assert cap["low_qps"] == 32 and cap["high_qps"] is None and cap["bounded"] is False
    assert cap["estimate_qps"] is None


def test_a_queue_still_building_fails_its_rate_and_invalid_steps_do_not_count():
    steps = [step(10, 300, 0), step(20, 300, 0, building=True), step(30, 300, 0, valid=False)]
    cap = bracket(pool(steps), 0.95, True, 0.95)
    assert cap["rate_verdicts"] == {"10": "pass", "20": "fail", "30": "inconclusive"}
    assert cap["low_qps"] == 10 and cap["high_qps"] == 20


def test_estimate_is_the_lowest_clause_crossing():
    err = {"clause": "error_ratio <= 0.01", "metric": "error_ratio", "stat": "value", "op": "<=", "threshold": 0.01,
           "n": 1000, "measured": 0.0, "verdict": "pass"}
    steps = [step(10, 1000, 0), step(20, 1000, 100)]
    steps[0]["clauses"].append(dict(err))
    steps[1]["clauses"].append({**err, "measured": 0.02})
    # latency crosses 5% at 10 + 10 * 0.05 / 0.1 = 15; errors cross 1% at 10 + 10 * 0.01 / 0.02 = 15 too: pick the lowest
    assert estimate(pool(steps)) == pytest.approx(15.0)
