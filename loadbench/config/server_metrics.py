"""A candidate's `server_metrics`: where its own Prometheus metrics are, how often to read them."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PRESET_NAMES = ("auto", "vllm", "sglang", "llamacpp", "tgi", "generic")


class ServerMetrics(BaseModel):
    """`server_metrics: URL`, `server_metrics: true` (the candidate's own host, path /metrics), or this mapping."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = None  # None: derived from the candidate's base_url (or the simulator's)
    interval_s: float = Field(1.0, ge=0.1, le=3600)
    preset: Literal["auto", "vllm", "sglang", "llamacpp", "tgi", "generic"] = "auto"
    timeout_s: float | None = Field(None, gt=0, le=60)  # default: the interval, at most 2 s
    max_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"url": v}
        if v is True:
            return {}
        return v

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("server_metrics must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("put no credentials in a server_metrics URL (they would end up in the artifacts)")
        return v

    @property
    def effective_timeout_s(self) -> float:
        return self.timeout_s if self.timeout_s is not None else min(self.interval_s, 2.0)


def metrics_url(config: ServerMetrics, base_url: str) -> str:
    """The URL to scrape: the configured one, else /metrics on the candidate's host and port."""
    if config.url:
        return config.url
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/metrics"


def shown_url(url: str) -> str:
    """The URL as artifacts show it: no query string (tokens hide there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


__all__ = ["PRESET_NAMES", "ServerMetrics", "metrics_url", "shown_url"]
