"""What an OpenAI-compatible endpoint supports, asked with a handful of tiny requests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from ..stats.server import NotPrometheus, detect_preset, parse_exposition
from .http1 import connect_error_text

PROBE_TIMEOUT_S = 30.0
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
          "required": ["answer"], "additionalProperties": False}
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look a word up.",
                                         "parameters": {"type": "object", "properties": {"word": {"type": "string"}},
                                                        "required": ["word"]}}}


@dataclass(slots=True)
class Check:
    name: str
    status: str  # yes | no | partly | error | skipped
    detail: str = ""


@dataclass(slots=True)
class ProbeReport:
    base_url: str
    model: str | None
    reachable: bool = False
    checks: list[Check] = field(default_factory=list)
    ttft_s: float | None = None
    metrics_url: str | None = None
    metrics_preset: str | None = None

    def status(self, name: str) -> str | None:
        return next((c.status for c in self.checks if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "reachable": self.reachable, "ttft_s": self.ttft_s,
                "metrics": {"url": self.metrics_url, "preset": self.metrics_preset},
                "checks": {c.name: {"status": c.status, "detail": c.detail} for c in self.checks}}


class _Asker:
    """POSTs and GETs against one endpoint; every failure becomes text, never an exception."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, headers: dict[str, str], timeout_s: float) -> None:
        self.session = session
        self.base = base_url.rstrip("/")
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def get(self, url: str) -> tuple[int, bytes]:
        async with self.session.get(url, headers=self.headers, timeout=self.timeout, allow_redirects=False) as resp:
            return resp.status, await resp.read()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.session.post(self.base + path, data=orjson.dumps(body), headers=self.headers,
                                     timeout=self.timeout, allow_redirects=False) as resp:
            raw = await resp.read()
        try:
            return resp.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return resp.status, None

    async def stream(self, body: dict[str, Any]) -> tuple[int, list[Any], float | None]:
        """(status, the decoded events, seconds to the first event with output)."""
        started = time.perf_counter()
        first: float | None = None
        events: list[Any] = []
        async with self.session.post(self.base + "/chat/completions", data=orjson.dumps(body), headers=self.headers,
                                     timeout=self.timeout, allow_redirects=False) as resp:
            if resp.status != 200:
                return resp.status, [], None
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data:") or line == b"data: [DONE]":
                    continue
                try:
                    event = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    continue
                events.append(event)
                delta = ((event.get("choices") or [{}])[0] or {}).get("delta") or {}
                if first is None and (delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content")):
                    first = time.perf_counter() - started
        return 200, events, first


def describe_error(exc: BaseException) -> str:
    """A connection failure in plain words (aiohttp's own text names its SSL context, 'ssl:default')."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return connect_error_text(exc.host, exc.port, exc.os_error if exc.os_error is not None else exc)
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    return str(exc) or type(exc).__name__


async def usage_in_stream(session: aiohttp.ClientSession, base_url: str, headers: dict[str, str], model: str | None,
                          timeout_s: float = 10.0) -> bool | None:
    """Does a streamed chat completion report usage when asked (stream_options.include_usage)?
    None when the question could not be asked (an error, a non-200 answer)."""
    ask = _Asker(session, base_url, {"Content-Type": "application/json", **headers}, timeout_s)
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "stream": True,
                            "stream_options": {"include_usage": True}, **({"model": model} if model else {})}
    try:
        status, events, _ = await ask.stream(body)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
    if status != 200 or not events:
        return None
    return any(isinstance(e, dict) and e.get("usage") for e in events)


def _message(obj: Any) -> dict[str, Any]:
    try:
        return obj["choices"][0]["message"] or {}
    except (KeyError, IndexError, TypeError):
        return {}


async def _models(ask: _Asker, report: ProbeReport) -> None:
    status, raw = await ask.get(ask.base + "/models")
    try:
        data = orjson.loads(raw) if status == 200 else None
        ids = [m.get("id") or m.get("name") for m in (data or {}).get("data") or []]
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        ids = []
    report.reachable = True
    if status == 200 and ids:
        report.checks.append(Check("models", "yes", ", ".join(str(i) for i in ids[:5])))
        report.model = report.model or str(ids[0])
    else:
        report.checks.append(Check("models", "no", f"HTTP {status}" if status != 200 else "no models listed"))


async def _chat(ask: _Asker, report: ProbeReport, base: dict[str, Any]) -> None:
    status, obj = await ask.post("/chat/completions", {**base, "messages": [{"role": "user", "content": "Say hello."}]})
    usage = (obj or {}).get("usage") if isinstance(obj, dict) else None
    if status == 200 and _message(obj):
        report.checks.append(Check("chat", "yes", "usage reported" if usage else "no usage in the response"))
    else:
        report.checks.append(Check("chat", "no", f"HTTP {status}"))
    status, obj = await ask.post("/completions", {**base, "prompt": "Hello"})
    ok = status == 200 and isinstance(obj, dict) and bool(obj.get("choices"))
    report.checks.append(Check("completions", "yes" if ok else "no", "" if ok else f"HTTP {status}"))


async def _streaming(ask: _Asker, report: ProbeReport, base: dict[str, Any]) -> None:
    body = {**base, "messages": [{"role": "user", "content": "Count to three."}], "stream": True,
            "stream_options": {"include_usage": True}}
    status, events, first = await ask.stream(body)
    if status != 200 or not events:
        report.checks.append(Check("streaming", "no", f"HTTP {status}" if status != 200 else "no events"))
        report.checks.append(Check("usage_in_stream", "skipped", "no stream"))
        return
    report.ttft_s = first
    report.checks.append(Check("streaming", "yes", f"{len(events)} events"))
    usage = any(isinstance(e, dict) and e.get("usage") for e in events)
    report.checks.append(Check("usage_in_stream", "yes" if usage else "no",
                               "" if usage else "token counts will be estimated (stream_options.include_usage ignored)"))


async def _structured(ask: _Asker, report: ProbeReport, base: dict[str, Any]) -> None:
    for name, response_format in (
        ("json_object", {"type": "json_object"}),
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}),
    ):
        body = {**base, "max_tokens": 64, "response_format": response_format,
                "messages": [{"role": "user", "content": 'Answer as JSON: {"answer": "yes" or "no"}. Is the sky blue?'}]}
        status, obj = await ask.post("/chat/completions", body)
        if status != 200:
            report.checks.append(Check(name, "no", f"HTTP {status}"))
            continue
        text = _message(obj).get("content") or ""
        try:
            orjson.loads(text)
            report.checks.append(Check(name, "yes", "valid JSON returned"))
        except orjson.JSONDecodeError:
            report.checks.append(Check(name, "partly", "accepted, but the answer was not JSON"))


async def _tools(ask: _Asker, report: ProbeReport, base: dict[str, Any]) -> None:
    body = {**base, "max_tokens": 64, "tools": [TOOL], "tool_choice": "required",
            "messages": [{"role": "user", "content": "Look up the word 'probe'."}]}
    status, obj = await ask.post("/chat/completions", body)
    if status != 200:
        report.checks.append(Check("tool_calls", "no", f"HTTP {status}"))
        return
    calls = _message(obj).get("tool_calls") or []
    report.checks.append(Check("tool_calls", "yes" if calls else "partly",
                               f"called {calls[0].get('function', {}).get('name')}" if calls
                               else "tools accepted, but no call came back"))


async def _metrics(ask: _Asker, report: ProbeReport, metrics_url: str | None) -> None:
    parts = urlsplit(ask.base)
    url = metrics_url or f"{parts.scheme}://{parts.netloc}/metrics"
    try:
        status, raw = await ask.get(url)
        parsed = parse_exposition(raw.decode("utf-8", "replace")) if status == 200 else None
    except NotPrometheus:
        report.checks.append(Check("metrics", "no", f"{url} is not Prometheus text"))
        return
    if parsed is None:
        report.checks.append(Check("metrics", "no", f"{url}: HTTP {status}"))
        return
    report.metrics_url, report.metrics_preset = url, detect_preset(parsed.kinds)
    report.checks.append(Check("metrics", "yes", f"{url}: {len(parsed.samples)} series, preset {report.metrics_preset}"))


async def probe(base_url: str, *, model: str | None = None, headers: dict[str, str] | None = None,
                metrics_url: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeReport:
    """Ask the endpoint what it supports.  Unreachable: `reachable` False and one error check."""
    report = ProbeReport(base_url, model)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    # A fresh connection per question: a server that closes idle keep-alive connections (llama.cpp
    # after a stream, say) would otherwise fail the next question for a reason that is not its own.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), trust_env=False) as session:
        ask = _Asker(session, base_url, hdrs, timeout_s)
        steps = (_models, _chat, _streaming, _structured, _tools)
        for step in steps:
            base: dict[str, Any] = {"max_tokens": 8, "temperature": 0, **({"model": report.model} if report.model else {})}
            try:
                await (step(ask, report) if step is _models else step(ask, report, base))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if step is _models:
                    report.checks.append(Check("reachable", "error", describe_error(exc)))
                    return report
                report.checks.append(Check(step.__name__.strip("_"), "error", describe_error(exc)))
        try:
            await _metrics(ask, report, metrics_url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            report.checks.append(Check("metrics", "no", describe_error(exc)))
    return report


__all__ = ["Check", "ProbeReport", "describe_error", "probe", "usage_in_stream"]
