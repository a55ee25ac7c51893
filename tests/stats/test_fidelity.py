"""Fidelity statistics, pure: paired variant differences, the format gap, contamination signals,
Kendall's tau and public-score inversions, from tables."""

from __future__ import annotations

import pytest

from loadbench.stats.fidelity import (
    by_variant,
    contamination,
    format_gap,
    kendall_tau,
    paired,
    public_vs_domain,
    ranking_flips,
)


def cells(outcomes):
    return {(i, 0): (v, 0.1) for i, v in enumerate(outcomes)}


def test_a_memorised_order_shows_as_a_significant_gap_and_a_shuffle_signal():
    verdicts = {"original": cells([1] * 40), "choices_shuffled": cells([1] * 10 + [0] * 30)}
    gap = format_gap(verdicts)
    assert gap["between"] == ["original", "choices_shuffled"] and gap["difference"] == pytest.approx(0.75)
    assert gap["significant"] and gap["ci_low"] > 0
    signal = contamination(verdicts, None)["shuffle_drop"]
    assert signal["signal"] and signal["verdict"].startswith("signal:")


def test_no_gap_no_signal_and_the_gap_reads_as_a_loss():
    same = {"original": cells([1, 0] * 20), "choices_shuffled": cells([1, 0] * 20)}
    assert format_gap(same)["difference"] == 0 and not format_gap(same)["significant"]
    assert not contamination(same, None)["shuffle_drop"]["signal"]
    better_shuffled = {"original": cells([0] * 20), "choices_shuffled": cells([1] * 20)}
    gap = format_gap(better_shuffled)
    assert gap["between"] == ["choices_shuffled", "original"] and gap["difference"] > 0  # the better variant first


@pytest.mark.parametrize("hits, n, fires", [(0, 40, False), (2, 40, False), (12, 40, True)])
def test_masked_option_matches_against_the_floor(hits, n, fires):
    out = contamination({"masked_option": cells([1] * hits + [0] * (n - hits))}, canary_failures=0)
    assert out["masked_option_match"]["signal"] is fires and out["masked_option_match"]["matches"] == hits
    assert out["canaries"] == {"leaks": 0, "signal": False}


def test_by_variant_counts_skipped_items_and_pairs_only_common_items():
    table = by_variant({"original": cells([1, 1, 0])}, {"original": 0, "open_ended": 5})
    assert table["original"]["n"] == 3 and table["original"]["accuracy"] == pytest.approx(2 / 3)
    assert table["open_ended"]["n"] == 0 and table["open_ended"]["items_skipped"] == 5
    d = paired(cells([1, 1, 1]), {(0, 0): (0, 0.1)})
    assert d["n"] == 1 and d["diff"] == 1.0


@pytest.mark.parametrize("a, b, tau", [([1, 2, 3], [10, 20, 30], 1.0), ([1, 2, 3], [30, 20, 10], -1.0), ([1, 2], [5, 5], 0.0)])
def test_kendall_tau(a, b, tau):
    assert kendall_tau(a, b) == pytest.approx(tau)


def test_exactly_the_pairs_the_public_benchmark_orders_the_other_way_are_inversions():
    domain = {"a": {"accuracy": 0.95}, "b": {"accuracy": 0.60}, "c": {"accuracy": 0.90}}
    tests = {("a", "b"): {"p_value": 0.001, "significant": True}, ("b", "a"): {"p_value": 0.001, "significant": True},
             ("a", "c"): {"p_value": 0.5, "significant": False}, ("c", "a"): {"p_value": 0.5, "significant": False},
             ("b", "c"): {"p_value": 0.002, "significant": True}, ("c", "b"): {"p_value": 0.002, "significant": True}}
    public = {"a": {"mmlu": 70.0, "agree": 90.0}, "b": {"mmlu": 80.0, "agree": 50.0}, "c": {"mmlu": 85.0, "agree": 85.0}}
    out = public_vs_domain(public, domain, tests)
    mmlu = out["mmlu"]["inversions"]
    # mmlu: b over a (domain: a), c over a (domain: a), c over b (agrees)
    assert {(i["public_better"], i["domain_better"]) for i in mmlu} == {("b", "a"), ("c", "a")}
    assert [i["significant"] for i in sorted(mmlu, key=lambda i: i["public_better"])] == [True, False]
    assert out["agree"]["inversions"] == [] and out["agree"]["kendall_tau_accuracy"] == pytest.approx(1.0)


def test_ranking_flips_between_variants_are_called_out():
    per = {"x": {"original": {"accuracy": 0.9}, "open_ended": {"accuracy": 0.5}},
           "y": {"original": {"accuracy": 0.7}, "open_ended": {"accuracy": 0.8}}}
    flips = ranking_flips(per)
    assert len(flips) == 1 and flips[0]["candidates"] == ["x", "y"] and "beats" in flips[0]["text"]
