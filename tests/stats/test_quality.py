"""Quality aggregation: accuracy over completed and attempted, tags, scorers, pairs, repeats."""

import pytest

from loadbench.pacing.records import OK, RequestResult
from loadbench.stats.quality import QualityAggregator, length_bucket


def rec(seq, cand, verdict, item_index=0, *, in_window=True, scores=None, input_tokens=100, epoch=0):
    r = RequestResult(seq=seq, candidate=cand, item_id=f"i{item_index}", item_index=item_index, epoch=epoch,
                      intended_ns=0, in_window=in_window, status=OK, done_ns=1_000_000)
    r.verdict = verdict
    r.input_tokens = input_tokens
    r.scores = scores if scores is not None else [{"scorer": "match", "name": "match", "status": verdict,
                                                   "error_class": "match.mismatch" if verdict == "fail" else None}]
    return r


def test_accuracy_counts_and_intervals():
    q = QualityAggregator(["a"], [["x"], ["y"]])
    verdicts = ["pass"] * 6 + ["fail"] * 2 + ["unscored"] + ["skipped"] * 2
    for i, v in enumerate(verdicts):
        q.add(rec(i, "a", v, i % 2))
    q.add(rec(99, "a", "pass", in_window=False))  # warm-up: not counted
    s = q.candidate_summary("a", window_cost_usd=0.6)
    acc = s["accuracy"]
    assert (acc["pass"], acc["fail"], acc["unscored"], acc["skipped"]) == (6, 2, 1, 2)
    assert acc["value"] == pytest.approx(6 / 8)
    assert acc["attempted_value"] == pytest.approx(6 / 10)  # request failures count against
    assert acc["ci_low"] < 0.75 < acc["ci_high"]
    assert s["per_correct_usd"] == pytest.approx(0.1)
    assert s["scorers"]["match"]["error_classes"] == {"match.mismatch": 2}
    assert set(s["by_tag"]) == {"x", "y", "input:<1k"}


def test_paired_comparison_uses_the_same_requests():
    q = QualityAggregator(["a", "b"], [[]])
    a = ["pass", "pass", "fail", "pass", "skipped"]
    b = ["pass", "fail", "fail", "fail", "pass"]
    for seq, (va, vb) in enumerate(zip(a, b)):
        q.add(rec(seq, "a", va))
        q.add(rec(seq, "b", vb))
    (cmp,) = q.comparisons()
    assert (cmp["a"], cmp["b"], cmp["n"], cmp["a_only"], cmp["b_only"]) == ("a", "b", 4, 2, 0)
    assert cmp["diff"] == pytest.approx(0.5)


def test_repeats_give_pass_at_k_and_pass_hat_k():
    q = QualityAggregator(["a"], [[], []])
    # item 0: 3 of 5 pass; item 1: 5 of 5
    seq = 0
    for item_index, passes in ((0, 3), (1, 5)):
        for k in range(5):
            q.add(rec(seq, "a", "pass" if k < passes else "fail", item_index, epoch=k))
            seq += 1
    r = q.candidate_summary("a", 0)["repeats"]
    assert r["min_attempts"] == 5
    assert r["pass@2"] == pytest.approx((0.9 + 1.0) / 2)
    assert r["pass^2"] == pytest.approx((0.3 + 1.0) / 2)


@pytest.mark.parametrize("tokens, bucket", [(10, "input:<1k"), (1500, "input:1k-4k"), (5000, "input:4k-16k"),
                                            (20000, "input:16k-64k"), (100000, "input:64k+")])
def test_length_buckets(tokens, bucket):
    assert length_bucket(tokens) == bucket


def test_no_scored_requests_gives_no_quality_block():
    q = QualityAggregator(["a"], [])
    assert q.candidate_summary("a", 0) is None
