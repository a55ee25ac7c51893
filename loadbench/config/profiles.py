"""Simulated deployments a scenario can name (`sim:`): their numbers and prices (a table of data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """A simulated model deployment.

    Timing follows a continuous-batching server: `slots` requests decode at once (more
    wait in a queue), prefill grows with prompt tokens, and each decode step slows down as
    more requests share the batch.
    """

    name: str
    description: str
    slots: int
    prefill_base_s: float
    prefill_per_token_s: float
    decode_per_token_s: float
    decode_slowdown: float  # extra step time at a full batch, as a fraction of the base
    accuracy: float  # probability of answering an item right
    filler_tokens: int  # answer length for prompts that are not dataset items
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    long_context_decay: float = 0.0  # accuracy lost (as a fraction) at 16k prompt tokens and beyond
    prefix_cache_blocks: int = 0  # automatic prefix caching: blocks of PREFIX_BLOCK tokens kept (0: off)
    agent_loop_share: float = 0.35  # of the agentic items it gets wrong, the share where it never stops calling
    agent_retry_p: float = 0.5  # chance to repeat a call verbatim after an error result
    # Format sensitivity and contamination (fidelity variants): the share of multiple-choice questions
    # answered by the position the answer had in the published test (a memorised set), accuracy kept
    # when the options are not shown, and the chance to reproduce an option hidden as [MASK].
    position_memory: float = 0.0
    open_ended_factor: float = 1.0
    contamination: float = 0.0


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="small-fast",
            description="a small, cheap model on a wide batch: quick but less accurate",
            slots=48, prefill_base_s=0.015, prefill_per_token_s=0.00004,
            decode_per_token_s=0.008, decode_slowdown=1.0, accuracy=0.74,
            filler_tokens=60, input_per_mtok=0.15, output_per_mtok=0.60, cached_input_per_mtok=0.075,
            long_context_decay=0.45, prefix_cache_blocks=16_384,
            position_memory=0.35, open_ended_factor=0.8, contamination=0.55,  # it has seen the public set
        ),
        Profile(
            name="large-accurate",
            description="a large model on fewer slots: slower and pricier, more often right",
            slots=12, prefill_base_s=0.06, prefill_per_token_s=0.00015,
            decode_per_token_s=0.022, decode_slowdown=1.5, accuracy=0.91,
            filler_tokens=60, input_per_mtok=2.50, output_per_mtok=10.0, cached_input_per_mtok=1.25,
            long_context_decay=0.12, prefix_cache_blocks=8_192, open_ended_factor=0.95,
        ),
        Profile(
            name="medium",
            description="a mid-size model between the two",
            slots=24, prefill_base_s=0.03, prefill_per_token_s=0.00008,
            decode_per_token_s=0.014, decode_slowdown=1.2, accuracy=0.84,
            filler_tokens=60, input_per_mtok=0.50, output_per_mtok=1.50, cached_input_per_mtok=0.25,
            long_context_decay=0.25, prefix_cache_blocks=8_192,
        ),
        Profile(
            name="judge",
            description="a grader model: compares a response with the reference in judge prompts",
            slots=32, prefill_base_s=0.02, prefill_per_token_s=0.00003,
            decode_per_token_s=0.004, decode_slowdown=0.5, accuracy=0.95,
            filler_tokens=40, input_per_mtok=1.0, output_per_mtok=4.0,
        ),
        Profile(
            name="instant",
            description="no model delay at all: for measuring the client itself",
            slots=100_000, prefill_base_s=0.0, prefill_per_token_s=0.0,
            decode_per_token_s=0.0, decode_slowdown=0.0, accuracy=1.0,
            filler_tokens=16, input_per_mtok=0.0, output_per_mtok=0.0,
        ),
    )
}


def with_params(profile: Profile, params: dict[str, float | int]) -> Profile:
    """A profile with some numbers replaced (e.g. slots, prefill_base_s)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(profile)} - {"name", "description"}
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown simulator parameter(s) {sorted(unknown)}; known: {', '.join(sorted(fields))}")
    return dataclasses.replace(profile, **params)
