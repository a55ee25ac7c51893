"""The OpenAI client against real servers on loopback: framing, timing, usage, every error class."""

import asyncio
import json

import pytest
from aiohttp import web

from loadbench.drive.aiohttp_transport import AiohttpTransport
from loadbench.drive.client import ClientSettings, OpenAIClient, build_payload
from loadbench.drive.http1 import Http1Pool
from loadbench.pacing.clock import MonotonicClock
from loadbench.pacing.records import ERROR, OK, RequestResult
from tests.conftest import read_http_request

CHAT = "/v1/chat/completions"


def sse(obj):
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(content=None, **extra):
    d = {}
    if content is not None:
        d["content"] = content
    d.update(extra)
    return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}


FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14,
                                  "prompt_tokens_details": {"cached_tokens": 4}}}


def stream_app(frames, *, delay_s=0.0, content_type="text/event-stream", status=200):
    """An app that writes `frames` (bytes) one write each, with a delay between them."""

    async def handler(request):
        await request.read()
        resp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        await resp.prepare(request)
        for i, frame in enumerate(frames):
            if i and delay_s:
                await asyncio.sleep(delay_s)
            await resp.write(frame)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post(CHAT, handler)
    app.router.add_post("/v1/completions", handler)
    return app


async def call(base, *, stream=True, api="chat", timeout_s=5.0, secret=None, max_bytes=1 << 20, pricing=(1.0, 2.0, 0.5)):
    settings = ClientSettings(
        url=base + (CHAT if api == "chat" else "/v1/completions"), api=api, stream=stream, timeout_s=timeout_s,
        headers={"Content-Type": "application/json"}, input_per_mtok=pricing[0], output_per_mtok=pricing[1],
        cached_input_per_mtok=pricing[2], max_response_bytes=max_bytes, secret=secret,
    )
    payload = build_payload(api=api, model="m", stream=stream, messages=[{"role": "user", "content": "hi"}],
                            prompt="hi", params={"max_tokens": 5})
    clock = MonotonicClock()
    r = RequestResult(seq=0, candidate="c", item_id="x", item_index=0, epoch=0, intended_ns=0, in_window=True)
    # the same protocol code over either transport: the results must not differ
    if CLIENT[0] == "aiohttp":
        transport = AiohttpTransport(settings.url, settings.headers, limit=4, max_body_bytes=max_bytes)
    else:
        transport = Http1Pool(settings.url, settings.headers, limit=4, max_body_bytes=max_bytes)
    try:
        t0 = clock.now_ns()
        await OpenAIClient(transport, settings, clock).send(payload, 40, r, t0)
    finally:
        await transport.close()
    return r


CLIENT = ["fast"]


@pytest.fixture(autouse=True, params=["fast", "aiohttp"])
def client_kind(request):
    """Every test runs against both HTTP clients: the lean default and aiohttp."""
    CLIENT[0] = request.param
    yield request.param
    CLIENT[0] = "fast"


async def test_stream_with_prelude_usage_and_split_frames(serve_app):
    body = b"".join([sse(delta("", role="assistant")), sse(delta("Hel")), sse(delta("lo")), sse(delta("!")),
                     sse(FINISH), sse(USAGE), b"data: [DONE]\n\n"])
    # cut the byte stream at awkward places: inside "data:", inside JSON, between \n\n
    cuts = [3, 17, 40, 41, 90, 150, len(body) - 3]
    frames = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    base = await serve_app(stream_app(frames, delay_s=0.02))
    r = await call(base)
    assert r.status == OK, r.error
    assert r.text == "Hello!"
    assert r.finish_reason == "stop"
    assert (r.input_tokens, r.output_tokens, r.cached_tokens, r.token_source) == (11, 3, 4, "server")
    assert r.cost_usd == pytest.approx(((11 - 4) * 1.0 + 4 * 0.5 + 3 * 2.0) / 1e6)
    assert r.first_token_ns > r.sent_ns and r.done_ns >= r.first_token_ns
    assert r.output_chunks == 3


async def test_role_only_prelude_does_not_count_as_first_token(serve_app):
    frames = [sse(delta("", role="assistant")), sse(delta("A")), sse(delta("B")), sse(FINISH), b"data: [DONE]\n\n"]
    base = await serve_app(stream_app(frames, delay_s=0.15))
    r = await call(base)
    assert r.status == OK
    # the prelude arrives at once; the first content 150 ms later
    assert (r.first_token_ns - r.sent_ns) >= 140_000_000
    assert r.first_content_ns == r.first_token_ns
    assert len(r.itl_us) == 1 and 140_000 <= r.itl_us[0] <= 400_000


async def test_reasoning_counts_for_ttft_but_not_for_content(serve_app):
    frames = [sse(delta(None, reasoning_content="thinking")), sse(delta("42")), sse(FINISH), b"data: [DONE]\n\n"]
    base = await serve_app(stream_app(frames, delay_s=0.1))
    r = await call(base)
    assert r.text == "42" and r.reasoning == "thinking"
    assert r.first_content_ns - r.first_token_ns >= 90_000_000


async def test_tool_call_deltas_are_assembled(serve_app):
    frames = [
        sse(delta(None, tool_calls=[{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])),
        sse(delta(None, tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}])),
        sse(delta(None, tool_calls=[{"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": '{"tz"'}}])),
        sse(delta(None, tool_calls=[{"index": 0, "function": {"arguments": '"Oslo"}'}}])),
        sse(delta(None, tool_calls=[{"index": 1, "function": {"arguments": ': "UTC"}'}}])),
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        b"data: [DONE]\n\n",
    ]
    r = await call(await serve_app(stream_app(frames)))
    assert r.status == OK
    assert r.finish_reason == "tool_calls"
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in r.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}),
        ("call_b", "get_time", {"tz": "UTC"}),
    ]
    assert r.token_source == "estimated"


async def test_non_streaming_chat_and_completions(serve_app):
    async def chat(request):
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

    async def comp(request):
        return web.json_response({"choices": [{"index": 0, "text": "no", "finish_reason": "length"}]})

    app = web.Application()
    app.router.add_post(CHAT, chat)
    app.router.add_post("/v1/completions", comp)
    base = await serve_app(app)
    r = await call(base, stream=False)
    assert (r.status, r.text, r.output_tokens, r.token_source, r.first_token_ns) == (OK, "yes", 1, "server", -1)
    r = await call(base, stream=False, api="completions")
    assert (r.status, r.text, r.finish_reason, r.token_source) == (OK, "no", "length", "estimated")
    assert r.input_tokens == 10  # 40 prompt characters / 4


async def test_completions_stream(serve_app):
    frames = [sse({"choices": [{"index": 0, "text": "a", "finish_reason": None}]}),
              sse({"choices": [{"index": 0, "text": "b", "finish_reason": "stop"}]}), b"data: [DONE]\n\n"]
    r = await call(await serve_app(stream_app(frames)), api="completions")
    assert (r.status, r.text, r.finish_reason) == (OK, "ab", "stop")


@pytest.mark.parametrize("status, cls", [(400, "http_4xx"), (404, "http_4xx"), (429, "http_429"), (500, "http_5xx"), (503, "http_5xx")])
async def test_http_errors_are_classified(serve_app, status, cls):
    async def handler(request):
        return web.json_response({"error": {"message": f"nope {status}"}}, status=status, headers={"Retry-After": "1"})

    app = web.Application()
    app.router.add_post(CHAT, handler)
    r = await call(await serve_app(app))
    assert (r.status, r.error_class, r.http_status) == (ERROR, cls, status)
    assert f"nope {status}" in r.error


async def test_stream_without_done_or_finish_reason_is_truncated(serve_app):
    r = await call(await serve_app(stream_app([sse(delta("partial")), sse(delta(" answer"))])))
    assert (r.status, r.error_class) == (ERROR, "stream_truncated")
    assert r.text == "partial answer"  # what arrived is kept


async def test_finish_reason_without_done_is_complete(serve_app):
    r = await call(await serve_app(stream_app([sse(delta("ok")), sse(FINISH)])))
    assert r.status == OK


async def test_malformed_json_chunk_is_invalid_response(serve_app):
    r = await call(await serve_app(stream_app([sse(delta("a")), b"data: {not json\n\n", b"data: [DONE]\n\n"])))
    assert (r.status, r.error_class) == (ERROR, "invalid_response")


async def test_error_event_in_stream_is_invalid_response(serve_app):
    r = await call(await serve_app(stream_app([sse({"error": {"message": "overloaded"}})])))
    assert r.error_class == "invalid_response" and "overloaded" in r.error


async def test_wrong_content_type_is_invalid_response(serve_app):
    r = await call(await serve_app(stream_app([b"<html>hello</html>"], content_type="text/html")))
    assert (r.status, r.error_class) == (ERROR, "invalid_response")


async def test_oversized_body_is_capped(serve_app):
    frames = [sse(delta("x" * 1000)) for _ in range(200)]
    r = await call(await serve_app(stream_app(frames)), max_bytes=50_000)
    assert r.error_class == "invalid_response" and "larger than" in r.error


async def test_stall_longer_than_timeout_is_timeout(serve_app):
    frames = [sse(delta("a")), sse(delta("b"))]
    t = asyncio.get_running_loop().time()
    r = await call(await serve_app(stream_app(frames, delay_s=2.0)), timeout_s=0.3)
    assert (r.status, r.error_class) == (ERROR, "timeout")
    assert asyncio.get_running_loop().time() - t < 1.5


async def test_connection_refused_is_connect():
    # bind a port, close it: nothing listens there now
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    r = await call(f"http://127.0.0.1:{port}")
    assert (r.status, r.error_class) == (ERROR, "connect")
    # in words, the same from both clients (no errno tuple, no aiohttp 'ssl:default' on plain http)
    assert r.error == f"cannot connect to 127.0.0.1:{port}: connection refused", r.error


async def test_name_that_does_not_resolve_is_connect():
    r = await call("http://no-such-host.invalid:9", timeout_s=3)
    assert (r.status, r.error_class) == (ERROR, "connect")


async def test_server_closing_the_socket_without_answer_is_disconnected(serve_raw):
    async def handler(reader, writer):
        await read_http_request(reader)
        writer.close()

    r = await call(await serve_raw(handler))
    assert (r.status, r.error_class) == (ERROR, "disconnected")


async def test_reset_mid_stream_is_disconnected(serve_raw):
    async def handler(reader, writer):
        await read_http_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = sse(delta("half"))
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()  # RST, no terminating chunk

    r = await call(await serve_raw(handler))
    assert (r.status, r.error_class) == (ERROR, "disconnected")
    assert r.text == "half"


async def test_secret_echoed_by_server_is_redacted(serve_app):
    async def handler(request):
        return web.json_response({"error": {"message": "invalid key sk-test-SECRET123 given"}}, status=401)

    app = web.Application()
    app.router.add_post(CHAT, handler)
    r = await call(await serve_app(app), secret="sk-test-SECRET123")
    assert r.error_class == "http_4xx"
    assert "SECRET123" not in r.error and "[REDACTED]" in r.error


def test_payload_merges_params_and_requests_usage_when_streaming():
    body = json.loads(build_payload(api="chat", model="m", stream=True, messages=[{"role": "user", "content": "q"}],
                                    prompt="q", params={"max_tokens": 9, "temperature": 0}))
    assert body == {"model": "m", "messages": [{"role": "user", "content": "q"}], "max_tokens": 9, "temperature": 0,
                    "stream": True, "stream_options": {"include_usage": True}}
    body = json.loads(build_payload(api="completions", model=None, stream=False, messages=[], prompt="q",
                                    params={"tools": [1], "max_tokens": 2}))
    assert body == {"prompt": "q", "max_tokens": 2, "stream": False}


async def test_redirects_are_not_followed_by_either_transport(serve_app):
    """One behaviour for both transports (documented in docs/outputs.md): a 3xx is an invalid
    response naming its Location; the request is not sent again elsewhere."""
    seen = []

    async def moved(request):
        seen.append(request.path)
        return web.Response(status=307, headers={"Location": "http://127.0.0.1:9/v1/chat/completions"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", moved)
    base = await serve_app(app)
    r = await call(base, stream=False)
    assert r.status == "error" and r.error_class == "invalid_response" and r.http_status == 307
    assert "redirect" in r.error and "127.0.0.1:9" in r.error
    assert seen == ["/v1/chat/completions"]
