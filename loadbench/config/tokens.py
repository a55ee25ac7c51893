"""Token counts when the server gives none, and cost from token counts (pure)."""

from __future__ import annotations

import re

_WORDISH = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Rough client-side estimate (about 4 characters per token for English text).

    Used only when a server returns no `usage`; results carry token_source="estimated".
    """
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)


def count_sim_tokens(text: str) -> int:
    """The simulator's own "tokenizer": words and punctuation marks."""
    return len(_WORDISH.findall(text))


def cost_usd(
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    input_per_mtok: float,
    output_per_mtok: float,
    cached_input_per_mtok: float | None,
) -> float:
    cached = min(cached_tokens, input_tokens)
    cached_rate = input_per_mtok if cached_input_per_mtok is None else cached_input_per_mtok
    return (
        (input_tokens - cached) * input_per_mtok + cached * cached_rate + output_tokens * output_per_mtok
    ) / 1e6
