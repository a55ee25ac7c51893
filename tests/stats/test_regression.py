"""Run comparison and regression rules (pure)."""

import pytest

from loadbench.pacing.records import RequestResult
from loadbench.stats.regression import (
    Tolerances,
    accuracy_change,
    compare_candidate,
    compare_runs,
    comparison_lines,
)


def recs(verdicts, candidate="a", offset=0):
    out = []
    for i, v in enumerate(verdicts):
        r = RequestResult(seq=i + offset, candidate=candidate, item_id=f"i{(i + offset) % 7}", item_index=0, epoch=0,
                          intended_ns=0, in_window=True)
        r.verdict = v
        out.append(r)
    return out


def summary(run_id, acc, p95, n=500, goodput=10.0, cost=0.001):
    return {"run_id": run_id, "candidates": {"a": {"accuracy": {"value": acc}, "latency_s": {"p95": p95, "count": n},
                                                   "goodput": {"rps": goodput}, "cost_usd": {"per_correct": cost}}}}


def test_paired_accuracy_drop_is_a_regression_and_noise_is_not():
    base = ["pass"] * 80 + ["fail"] * 20
    worse = ["pass"] * 50 + ["fail"] * 50
    r = compare_runs(summary("b", 0.8, 1.0), summary("n", 0.5, 1.0), recs(base), recs(worse))
    acc = r["candidates"]["a"]["checks"]["accuracy"]
    assert acc["method"].startswith("paired") and acc["n"] == 100 and acc["diff"] == pytest.approx(-0.3)
    assert r["regressed"] == ["a"] and r["candidates"]["a"]["regressed"] == ["accuracy"]
    noisy = ["pass"] * 79 + ["fail"] * 21
    assert compare_runs(summary("b", 0.8, 1.0), summary("n", 0.79, 1.0), recs(base), recs(noisy))["regressed"] == []


def test_unmatched_schedules_fall_back_to_a_two_proportion_test():
    base = recs(["pass"] * 90 + ["fail"] * 10)
    new = recs(["pass"] * 60 + ["fail"] * 40, offset=10_000)
    acc = accuracy_change({(r.seq, r.item_id, 0): r.verdict for r in base}, {(r.seq, r.item_id, 0): r.verdict for r in new})
    assert acc["method"].startswith("unpaired") and acc["p_value"] < 0.001 and acc["diff"] == pytest.approx(-0.3)


@pytest.mark.parametrize("new, regressed", [
    (summary("n", 0.8, 1.05), []),
    (summary("n", 0.8, 1.2), ["latency_p95"]),
    (summary("n", 0.8, 1.2, n=50), []),  # too few requests to judge a p95
    (summary("n", 0.8, 1.0, goodput=8.0), ["goodput"]),
    (summary("n", 0.8, 1.0, cost=0.0012), ["cost_per_correct"]),
])
def test_latency_goodput_and_cost_rules(new, regressed):
    got = compare_candidate(summary("b", 0.8, 1.0)["candidates"]["a"], new["candidates"]["a"], None, Tolerances())
    assert got["regressed"] == regressed


def test_comparison_lines_name_what_regressed():
    base = ["pass"] * 80 + ["fail"] * 20
    r = compare_runs(summary("b", 0.8, 1.0), summary("n", 0.5, 1.5), recs(base), recs(["pass"] * 50 + ["fail"] * 50))
    text = "\n".join(comparison_lines(r))
    assert "REGRESSED in accuracy, latency_p95" in text and "-30.0 points" in text and "x1.50" in text


def test_a_p95_that_moved_by_noise_alone_is_not_a_regression_but_a_real_shift_is():
    import numpy as np

    from loadbench.stats.regression import RunSamples

    rng = np.random.default_rng(1)
    base = rng.lognormal(-3, 0.5, 400)
    # another draw from the same distribution whose p95 happens to be >10% higher
    noisy = next(d for d in (rng.lognormal(-3, 0.5, 400) for _ in range(500))
                 if np.percentile(d, 95) / np.percentile(base, 95) > 1.12)
    shifted = rng.lognormal(-3, 0.5, 400) * 1.5

    def cand(values):
        return {"latency_s": {"p95": float(np.percentile(values, 95)), "count": len(values)}}

    def check(values):
        return compare_candidate(cand(base), cand(values), None, Tolerances(),
                                 RunSamples(latency_s=list(base)), RunSamples(latency_s=list(values)))["checks"]["latency_p95"]

    same = check(noisy)
    assert same["ratio"] > 1.12 and same["ratio_ci_low"] <= 1.0 and not same["regressed"]
    moved = check(shifted)
    assert moved["ratio_ci_low"] > 1.0 and moved["regressed"]
