"""Statistics for quality numbers: Wilson intervals, paired comparisons, pass@k, agreement (pure)."""

from __future__ import annotations

import math
from math import comb

from .confidence import binomial_two_sided_p

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """(estimate, low, high) of a proportion with the Wilson score interval."""
    if n <= 0:
        return None, None, None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(a_only: int, b_only: int, n: int, z: float = Z95) -> dict[str, float | int | None]:
    """Difference in pass rate between A and B on the same n items.

    a_only: items A passed and B failed; b_only: the reverse.  The interval is the Wald
    interval of a paired difference (with the usual variance of discordant pairs); the
    p-value is McNemar's exact test on the discordant pairs.
    """
    if n <= 0:
        return {"n": 0, "diff": None, "ci_low": None, "ci_high": None, "p_value": None, "a_only": a_only, "b_only": b_only}
    diff = (a_only - b_only) / n
    var = ((a_only + b_only) - (a_only - b_only) ** 2 / n) / (n * n)
    half = z * math.sqrt(max(var, 0.0))
    return {
        "n": n, "diff": diff, "ci_low": max(-1.0, diff - half), "ci_high": min(1.0, diff + half),
        "p_value": binomial_two_sided_p(min(a_only, b_only), a_only + b_only), "a_only": a_only, "b_only": b_only,
    }


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Probability that at least one of k draws (without replacement) from n attempts passed."""
    if n < k or k <= 0:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float | None:
    """Probability that all k draws from n attempts passed (tau-bench's pass^k)."""
    if n < k or k <= 0:
        return None
    return comb(c, k) / comb(n, k)


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over categorical labels."""
    n = len(pairs)
    if n == 0:
        return None
    labels = sorted({x for p in pairs for x in p})
    observed = sum(1 for a, b in pairs if a == b) / n
    expected = sum((sum(1 for a, _ in pairs if a == lab) / n) * (sum(1 for _, b in pairs if b == lab) / n) for lab in labels)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)
