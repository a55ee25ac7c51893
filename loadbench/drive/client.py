"""OpenAI-compatible HTTP client: sends one request, fills its record, classifies failures."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..config.tokens import cost_usd, estimate_tokens
from ..pacing.clock import Clock
from ..pacing.records import ERROR, RequestResult
from .http1 import BadResponse, ChunkSink, ConnectFailed, Disconnected, Reply
from .sse import DONE, SSEDecoder

MAX_ERROR_BODY = 2048
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings:
    url: str
    api: str  # "chat" | "completions"
    stream: bool
    timeout_s: float
    headers: dict[str, str]
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    secret: str | None = None  # redacted from anything stored

    def redact(self, text: str) -> str:
        secret = self.secret
        if secret and secret in text:
            text = text.replace(secret, "[REDACTED]")
        return text


def build_payload(
    *,
    api: str,
    model: str | None,
    stream: bool,
    messages: list[dict[str, Any]],
    prompt: str,
    params: dict[str, Any],
) -> bytes:
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    if api == "chat":
        body["messages"] = messages
    else:
        body["prompt"] = prompt
        for key in ("tools", "tool_choice", "response_format"):
            params.pop(key, None)
    body.update(params)
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


class _Failure(Exception):
    def __init__(self, error_class: str, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.http_status = http_status


class Transport(Protocol):
    """What sends one request: the lean HTTP/1.1 pool (drive/http1.py) or aiohttp (drive/aiohttp_transport.py).

    A streamed 2xx text/event-stream body goes to `sink` chunk by chunk as it arrives; anything
    else comes back whole in the Reply.  Raises ConnectFailed, Disconnected, BadResponse,
    TimeoutError, or what the sink raised."""

    async def post(self, payload: bytes, timeout_s: float, sink: ChunkSink | None = None) -> Reply: ...


class OpenAIClient:
    """The OpenAI protocol, once, over any Transport: one per candidate.  Builds no request itself
    (payloads are pre-rendered); parses SSE as chunks arrive, assembles text, tool calls and
    usage, and classifies every failure into the record."""

    def __init__(self, transport: Transport, settings: ClientSettings, clock: Clock) -> None:
        self._pool = transport
        self._s = settings
        self._clock = clock
        self._chat = settings.api == "chat"

    async def send(self, payload: bytes, prompt_chars: int, r: RequestResult, t0_ns: int) -> None:
        """Send `payload`; record times (offsets from t0_ns), output, usage and outcome in `r`.

        Never raises for a failed request (it becomes data); lets cancellation through."""
        clock = self._clock
        s = self._s
        chat = self._chat
        state = _StreamState()
        sink = None
        if s.stream:
            decoder = SSEDecoder()
            feed = decoder.feed
            apply = state.apply_event

            def sink(chunk: bytes) -> None:
                now = clock.now_ns() - t0_ns
                for data in feed(chunk):
                    apply(data, now, chat)

        try:
            r.sent_ns = clock.now_ns() - t0_ns
            reply = await self._pool.post(payload, s.timeout_s, sink)
            r.http_status = status = reply.status
            if status >= 400:
                if reply.retry_after:
                    with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: ignore it
                        r.retry_after_s = min(float(reply.retry_after), 300.0)
                raise _Failure(_http_class(status), _error_text(status, reply.body[:MAX_ERROR_BODY]), status)
            if status >= 300:
                raise _Failure("invalid_response", f"HTTP {status} redirect to {reply.location or '(no Location)'}: "
                                                   "loadbench does not follow redirects; use the final address as base_url")
            if reply.streamed:
                now = clock.now_ns() - t0_ns
                for data in decoder.close():
                    state.apply_event(data, now, chat)
                if not state.done and state.finish_reason is None:
                    raise _Failure("stream_truncated", "stream ended without [DONE] or a finish_reason")
            elif "json" in reply.content_type:
                state.apply_body(reply.body, chat)
            else:
                raise _Failure("invalid_response", f"unexpected content type {reply.content_type or '(none)'!r}")
            r.done_ns = clock.now_ns() - t0_ns
        except _Failure as f:
            _failed(r, clock.now_ns() - t0_ns, f.error_class, self._s.redact(str(f)))
        except TimeoutError:
            _failed(r, clock.now_ns() - t0_ns, "timeout", f"no complete response within {s.timeout_s:g} s")
        except ConnectFailed as exc:
            _failed(r, clock.now_ns() - t0_ns, "connect", self._s.redact(str(exc)))
        except Disconnected as exc:
            _failed(r, clock.now_ns() - t0_ns, "disconnected", self._s.redact(str(exc)))
        except BadResponse as exc:
            _failed(r, clock.now_ns() - t0_ns, "invalid_response", self._s.redact(str(exc)))
        state.finish(r, prompt_chars, s)


def _failed(r: RequestResult, done_ns: int, error_class: str, message: str) -> None:
    r.done_ns = done_ns
    r.status = ERROR
    r.error_class = error_class
    r.error = message


def _http_class(status: int) -> str:
    if status == 429:
        return "http_429"
    return "http_5xx" if status >= 500 else "http_4xx"


def _error_text(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(orjson.JSONDecodeError):  # a non-JSON error body is shown as it is
        obj = orjson.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and err.get("message"):
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
    return f"HTTP {status}: {text[:300]}" if text else f"HTTP {status}"


class _StreamState:
    """Accumulates one response, streamed or not."""

    __slots__ = (
        "content",
        "done",
        "finish_reason",
        "first_content",
        "reasoning",
        "refusal",
        "times",
        "tools",
        "usage",
    )

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.times: list[int] = []
        self.first_content = -1

    def apply_event(self, data: bytes, now: int, chat: bool) -> None:
        if data == DONE:
            self.done = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _Failure("invalid_response", f"SSE event is not JSON: {data[:120]!r}") from None
        if not isinstance(obj, dict):
            raise _Failure("invalid_response", "SSE event is not a JSON object")
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise _Failure("invalid_response", f"error event in stream: {str(msg)[:300]}")
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        choices = obj.get("choices")
        if not choices:
            return
        choice = choices[0]
        bearing = False
        if chat:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.content.append(text)
                bearing = True
                if self.first_content < 0:
                    self.first_content = now
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought:
                self.reasoning.append(thought)
                bearing = True
            refusal = delta.get("refusal")
            if refusal:
                self.refusal.append(refusal)
                bearing = True
            calls = delta.get("tool_calls")
            if calls:
                self._merge_tool_deltas(calls)
                bearing = True
        else:
            text = choice.get("text")
            if text:
                self.content.append(text)
                bearing = True
                if self.first_content < 0:
                    self.first_content = now
        reason = choice.get("finish_reason")
        if reason:
            self.finish_reason = reason
        if bearing:
            self.times.append(now)

    def _merge_tool_deltas(self, calls: list[dict[str, Any]]) -> None:
        for pos, delta in enumerate(calls):
            index = delta.get("index", pos)
            slot = self.tools.get(index)
            if slot is None:
                slot = self.tools[index] = {"id": None, "type": "function", "name": "", "arguments": []}
            if delta.get("id"):
                slot["id"] = delta["id"]
            fn = delta.get("function") or {}
            if fn.get("name"):
                slot["name"] += fn["name"]
            if fn.get("arguments"):
                slot["arguments"].append(fn["arguments"])

    def apply_body(self, body: bytes, chat: bool) -> None:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Failure("invalid_response", f"body is not JSON: {body[:120]!r}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list) or not obj["choices"]:
            raise _Failure("invalid_response", "body has no choices")
        self.usage = obj.get("usage")
        choice = obj["choices"][0]
        self.finish_reason = choice.get("finish_reason")
        self.done = True
        if chat:
            msg = choice.get("message") or {}
            if msg.get("content"):
                self.content.append(msg["content"])
            thought = msg.get("reasoning_content") or msg.get("reasoning")
            if thought:
                self.reasoning.append(thought)
            if msg.get("refusal"):
                self.refusal.append(msg["refusal"])
            for i, call in enumerate(msg.get("tool_calls") or []):
                fn = call.get("function") or {}
                self.tools[i] = {
                    "id": call.get("id"), "type": "function",
                    "name": fn.get("name", ""), "arguments": [fn.get("arguments") or ""],
                }
        elif choice.get("text"):
            self.content.append(choice["text"])

    def finish(self, r: RequestResult, prompt_chars: int, s: ClientSettings) -> None:
        r.text = "".join(self.content)
        r.reasoning = "".join(self.reasoning)
        if self.refusal:
            r.refusal = "".join(self.refusal)
        if self.tools:
            r.tool_calls = [
                {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": "".join(t["arguments"])}}
                for _, t in sorted(self.tools.items())
            ]
        r.finish_reason = self.finish_reason
        times = self.times
        if times:
            r.first_token_ns = times[0]
            r.output_chunks = len(times)
            r.itl_us = [(b - a) // 1000 for a, b in itertools.pairwise(times)]
        r.first_content_ns = self.first_content
        usage = self.usage
        if usage and isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            r.input_tokens = int(usage.get("prompt_tokens") or 0)
            r.output_tokens = int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details") or {}
            r.cached_tokens = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
            r.token_source = "server"
        elif r.status != ERROR or times:
            args = "".join("".join(t["arguments"]) for t in self.tools.values())
            r.input_tokens = (prompt_chars + 3) // 4
            r.output_tokens = estimate_tokens(r.text + r.reasoning + args)
            r.token_source = "estimated"
        r.cost_usd = cost_usd(
            r.input_tokens, r.output_tokens, r.cached_tokens,
            s.input_per_mtok, s.output_per_mtok, s.cached_input_per_mtok,
        )
