"""The faults a scenario can ask the simulator to inject (`sim_faults:`), as validated configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

FAULTS = {
    "http_5xx": "HTTP 503 with a JSON error body",
    "http_429": "HTTP 429 with Retry-After: 1",
    "reset": "the connection is reset in the middle of the stream",
    "stall": "no answer for stall_s seconds (longer than the client's timeout)",
    "truncate": "the stream ends without [DONE] and without a finish_reason",
    "malformed": "one SSE event is not valid JSON",
    "oversized": "a body of oversize_bytes (larger than the client's cap)",
    "slow_drip": "bytes trickle out one at a time, slower than the timeout allows",
    "wrong_content_type": "HTTP 200 with an HTML body",
    "no_length_close": "a cut JSON body with no Content-Length, then the connection closes",
}


class FaultWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(ge=0, le=1)
    start_s: float = Field(0.0, ge=0)  # seconds since the simulator started
    end_s: float | None = Field(None, gt=0)


class FaultSpec(BaseModel):
    """Per-fault probability (a number) or a schedule ({rate, start_s, end_s})."""

    model_config = ConfigDict(extra="forbid")
    http_5xx: float | FaultWindow = 0.0
    http_429: float | FaultWindow = 0.0
    reset: float | FaultWindow = 0.0
    stall: float | FaultWindow = 0.0
    truncate: float | FaultWindow = 0.0
    malformed: float | FaultWindow = 0.0
    oversized: float | FaultWindow = 0.0
    slow_drip: float | FaultWindow = 0.0
    wrong_content_type: float | FaultWindow = 0.0
    no_length_close: float | FaultWindow = 0.0
    stall_s: float = Field(30.0, gt=0)
    drip_interval_s: float = Field(0.25, gt=0)
    oversize_bytes: int = Field(4 * 1024 * 1024, gt=0)
