"""A pre-rendered OpenAI-compatible endpoint for measuring the client: fast enough not to be
the bottleneck (raw asyncio protocol, canned bytes), so `loadbench calibrate` and the
benchmarks measure loadbench itself."""

from __future__ import annotations

import asyncio
import os

import orjson

_JSON = orjson.dumps({
    "id": "chatcmpl-static", "object": "chat.completion", "created": 0, "model": "static",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
})
_MODELS = orjson.dumps({"object": "list", "data": [{"id": "static", "object": "model", "owned_by": "loadbench"}]})


def sse_body(chunks: int) -> bytes:
    """`chunks` one-token content events, a finish event, a usage event and [DONE]."""
    base = {"id": "chatcmpl-static", "object": "chat.completion.chunk", "created": 0, "model": "static"}
    events = [orjson.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})]
    events += [orjson.dumps({**base, "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]})] * chunks
    events.append(orjson.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    events.append(orjson.dumps({**base, "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": chunks,
                                                                   "total_tokens": 8 + chunks}}))
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _response(body: bytes, content_type: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: keep-alive\r\n\r\n" + body)


class _Http(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length bodies: enough for an OpenAI client."""

    __slots__ = ("_buf", "_json", "_sse", "_transport")

    def __init__(self, json_response: bytes, sse_response: bytes) -> None:
        self._buf = b""
        self._json = json_response
        self._sse = sse_response
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else len(head)].strip() or 0)
            if len(buf) < end + 4 + length:
                break
            body = buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length :]
            if head.startswith(b"get"):
                out.append(_response(_MODELS, b"application/json"))
            elif b'"stream":true' in body or b'"stream": true' in body:
                out.append(self._sse)
            else:
                out.append(self._json)
        self._buf = buf
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def serve_static(port: int, chunks: int = 200, host: str = "127.0.0.1", parent_pid: int | None = None) -> None:
    json_response = _response(_JSON, b"application/json")
    sse_response = _response(sse_body(chunks), b"text/event-stream")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(json_response, sse_response), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(orjson.dumps({"port": bound, "profile": "static", "chunks": chunks}).decode(), flush=True)
    async with server:
        while parent_pid is None or (os.getppid() == parent_pid):
            await asyncio.sleep(0.5)
