"""The per-request record: one slotted object per scheduled request, the product's unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Status of a scheduled request.
OK = "ok"
ERROR = "error"
DROPPED = "dropped"
CANCELLED = "cancelled"

# Error classes: every failure ends up as exactly one of these.
ERROR_CLASSES: dict[str, str] = {
    "connect": "could not connect (refused, unreachable, name did not resolve)",
    "timeout": "no complete response within timeout_s",
    "http_4xx": "HTTP 4xx other than 429",
    "http_429": "HTTP 429 Too Many Requests (rate limited)",
    "http_5xx": "HTTP 5xx",
    "invalid_response": "body or SSE event that is not valid JSON, wrong content type, or too large",
    "stream_truncated": "stream ended without [DONE] or a finish_reason",
    "disconnected": "server closed or reset the connection before the response was complete",
    "cancelled": "cancelled when the run stopped",
    "internal": "loadbench itself failed on this request (a bug; please report it)",
}


@dataclass(slots=True)
class RequestResult:
    """Everything measured about one scheduled request.

    Times are ns offsets from the run's start (t0); -1 means "did not happen".
    """

    seq: int
    candidate: str
    item_id: str
    item_index: int
    epoch: int
    intended_ns: int
    in_window: bool
    status: str = OK
    error_class: str | None = None
    error: str | None = None
    http_status: int = 0
    sent_ns: int = -1
    first_token_ns: int = -1
    first_content_ns: int = -1
    done_ns: int = -1
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    token_source: str = "none"
    cost_usd: float = 0.0
    finish_reason: str | None = None
    text: str = ""
    reasoning: str = ""
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    # Inter-token (inter-chunk) latencies between output-bearing chunks, in µs.
    itl_us: list[int] = field(default_factory=list)
    output_chunks: int = 0
    retries: int = 0  # extra attempts (retries are off unless the candidate enables them)
    retry_after_s: float = 0.0  # the server's Retry-After on the last failed attempt
    # Quality: pass | fail | unscored | skipped (None when the item has no scorers).
    verdict: str | None = None
    scores: list[dict[str, Any]] | None = None
    # Sessions (multi-turn items, agentic tool loops): one record per request of the session,
    # all with the session's `seq`.  `step` counts requests in the session, `turn` user turns.
    # phase "tool": the reply called tools that loadbench answered (not scored on its own);
    # "answer": the reply that ends a user turn (scored).  `last`: the session's final record.
    turn: int = 0
    step: int = 0
    phase: str = "answer"
    last: bool = True
    # On the answer record of an agentic turn: the tool calls made, steps, retries, and
    # whether the model stopped by itself.
    trajectory: dict[str, Any] | None = None

    @property
    def latency_ns(self) -> int:
        """Headline latency: from the intended send time (coordinated-omission free)."""
        return self.done_ns - self.intended_ns if self.done_ns >= 0 else -1

    @property
    def service_ns(self) -> int:
        return self.done_ns - self.sent_ns if self.done_ns >= 0 and self.sent_ns >= 0 else -1

    @property
    def schedule_lag_ns(self) -> int:
        return self.sent_ns - self.intended_ns if self.sent_ns >= 0 else -1

    @property
    def ttft_ns(self) -> int:
        return self.first_token_ns - self.intended_ns if self.first_token_ns >= 0 else -1

    @property
    def ttfc_ns(self) -> int:
        return self.first_content_ns - self.intended_ns if self.first_content_ns >= 0 else -1

    @property
    def tpot_ns(self) -> int:
        """(last - first output chunk) / (output_tokens - 1); -1 when undefined."""
        if self.first_token_ns < 0 or self.output_tokens < 2 or self.done_ns < 0:
            return -1
        last_ns = self.first_token_ns + sum(self.itl_us) * 1000
        return (last_ns - self.first_token_ns) // (self.output_tokens - 1)


RESULT_FIELDS: tuple[str, ...] = tuple(RequestResult.__dataclass_fields__)

_RESET_FOR_RETRY = {
    "status": OK, "error_class": None, "error": None, "http_status": 0, "first_token_ns": -1, "first_content_ns": -1,
    "done_ns": -1, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "token_source": "none", "cost_usd": 0.0,
    "finish_reason": None, "text": "", "reasoning": "", "refusal": None, "tool_calls": None, "output_chunks": 0,
    "retry_after_s": 0.0,
}


def reset_for_retry(r: RequestResult) -> None:
    """Clear what the failed attempt left, keeping identity, intended time and first send."""
    for name, value in _RESET_FOR_RETRY.items():
        setattr(r, name, value)
    r.itl_us = []


def result_from_dict(row: dict[str, Any]) -> RequestResult:
    """Rebuild a record from a results.jsonl row (unknown keys are ignored)."""
    return RequestResult(**{k: row[k] for k in RESULT_FIELDS if k in row})
