"""Statistics against known values."""

import pytest

from loadbench.stats.proportions import (
    binomial_two_sided_p,
    cohen_kappa,
    paired_difference,
    pass_at_k,
    pass_hat_k,
    wilson,
)


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (8, 10, 0.4902, 0.9433),  # textbook Wilson interval for 8/10
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_known_values(k, n, low, high):
    p, lo, hi = wilson(k, n)
    assert p == k / n
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_empty():
    assert wilson(0, 0) == (None, None, None)


@pytest.mark.parametrize(
    "k, n, p",
    [(0, 10, 0.001953125), (1, 10, 0.021484375), (5, 10, 1.0), (2, 12, 0.03857421875), (0, 0, 1.0)],
)
def test_exact_binomial_known_values(k, n, p):
    assert binomial_two_sided_p(k, n) == pytest.approx(p)


def test_paired_difference():
    d = paired_difference(a_only=15, b_only=5, n=100)
    assert d["diff"] == pytest.approx(0.10)
    assert d["p_value"] == pytest.approx(binomial_two_sided_p(5, 20))
    assert d["ci_low"] < 0.10 < d["ci_high"]
    # variance of a paired difference: ((b+c) - (b-c)^2/n) / n^2
    half = 1.959963984540054 * (((20) - 100 / 100) / 100**2) ** 0.5
    assert d["ci_high"] - 0.10 == pytest.approx(half)
    same = paired_difference(0, 0, 50)
    assert same["diff"] == 0 and same["p_value"] == 1.0


@pytest.mark.parametrize("n, c, k, at, hat", [(5, 3, 2, 0.9, 0.3), (5, 5, 3, 1.0, 1.0), (5, 0, 1, 0.0, 0.0), (4, 2, 1, 0.5, 0.5)])
def test_pass_at_k_and_pass_hat_k(n, c, k, at, hat):
    assert pass_at_k(n, c, k) == pytest.approx(at)
    assert pass_hat_k(n, c, k) == pytest.approx(hat)


def test_pass_k_undefined_when_too_few_attempts():
    assert pass_at_k(1, 1, 2) is None and pass_hat_k(1, 1, 2) is None


def test_cohen_kappa_known_value():
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: po=0.7, pe=0.5 -> kappa 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("y", "y"), ("n", "n")]) == pytest.approx(1.0)
    assert cohen_kappa([]) is None
