"""The lean HTTP/1.1 pool against real servers on loopback: keep-alive, framing, limits, failures."""

import asyncio
import gzip
import json

import pytest
from aiohttp import web

from loadbench.drive.http1 import BadResponse, ConnectFailed, Disconnected, Http1Pool, Target, request_head
from tests.conftest import read_http_request

HEADERS = {"Content-Type": "application/json"}


def ok(body=b'{"x":1}', extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def raw_server(answers, seen=None, peers=None):
    """A server that reads requests and writes `answers(n)` for the n-th request on any connection."""
    count = [0]

    async def handler(reader, writer):
        if peers is not None:
            peers.append(writer.get_extra_info("peername"))
        try:
            while True:
                body = await read_http_request(reader)
                if seen is not None:
                    seen.append(body)
                answer = answers(count[0])
                count[0] += 1
                if answer is None:
                    writer.close()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return handler


async def test_keep_alive_reuses_one_connection_and_sends_exact_requests(serve_raw):
    seen, peers = [], []
    url = await serve_raw(raw_server(lambda n: ok(b'{"n":%d}' % n), seen, peers))
    pool = Http1Pool(url + "/v1/chat/completions", HEADERS, limit=8)
    try:
        replies = [await pool.post(b'{"q":%d}' % i, 5) for i in range(5)]
    finally:
        await pool.close()
    assert [json.loads(r.body)["n"] for r in replies] == [0, 1, 2, 3, 4]
    assert all(r.status == 200 and r.content_type == "application/json" and not r.streamed for r in replies)
    assert seen == [b'{"q":%d}' % i for i in range(5)]
    assert len(peers) == 1  # sequential requests share one keep-alive connection


async def test_request_head_is_well_formed_and_rejects_header_injection():
    head = request_head(Target.parse("http://127.0.0.1:8000/v1/chat/completions?x=1"), {"X-Team": "ml", "Host": "evil"})
    text = head.decode()
    assert text.startswith("POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert "X-Team: ml\r\n" in text and "evil" not in text and text.endswith("Content-Length: ")
    assert "Host: [::1]\r\n" in request_head(Target.parse("http://[::1]:80/v1"), {}).decode()
    with pytest.raises(ValueError, match="characters"):
        request_head(Target.parse("http://127.0.0.1/v1"), {"X-A": "1\r\nX-Injected: 2"})
    with pytest.raises(ValueError, match="http"):
        Target.parse("ftp://127.0.0.1/v1")


async def test_concurrent_requests_stay_within_the_limit(serve_raw):
    peers = []

    async def slow(reader, writer):
        peers.append(writer)
        try:
            while True:
                await read_http_request(reader)
                await asyncio.sleep(0.05)
                writer.write(ok())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    url = await serve_raw(slow)
    pool = Http1Pool(url + "/v1", HEADERS, limit=3)
    try:
        replies = await asyncio.gather(*(pool.post(b"{}", 5) for _ in range(12)))
        assert all(r.status == 200 for r in replies)
        assert len(peers) == 3 and pool.open_connections == 3
    finally:
        await pool.close()


async def test_chunked_gzip_and_read_until_close_bodies(serve_raw):
    packed = gzip.compress(b'{"zipped":true}')
    answers = {
        0: b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        1: ok(packed, b"Content-Encoding: gzip\r\n"),
        2: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b'{"after":"100"}'),
        3: b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"until":"close"}',
    }

    async def handler(reader, writer):
        n = 0
        try:
            while True:
                await read_http_request(reader)
                writer.write(answers[handler.count])
                handler.count += 1
                n += 1
                await writer.drain()
                if handler.count == 4:
                    writer.close()  # the HTTP/1.0 body ends here
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    handler.count = 0
    url = await serve_raw(handler)
    pool = Http1Pool(url + "/v1", HEADERS, limit=2)
    try:
        bodies = [json.loads((await pool.post(b"{}", 5)).body) for _ in range(4)]
    finally:
        await pool.close()
    assert bodies == [{"a": 1}, {"zipped": True}, {"after": "100"}, {"until": "close"}]


async def test_streamed_bodies_go_to_the_sink_one_call_per_read(serve_app):
    async def handler(request):
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(b"data: %d\n\n" % i)
            await asyncio.sleep(0.02)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1", handler)
    url = await serve_app(app)
    got = []
    pool = Http1Pool(url + "/v1", HEADERS, limit=2)
    try:
        reply = await pool.post(b"{}", 5, got.append)
        # an error status is never streamed: its body is kept for the error message
        plain = await pool.post(b"{}", 5, None)
    finally:
        await pool.close()
    assert reply.streamed and reply.body == b"" and b"".join(got) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert len(got) == 3  # the writes were 20 ms apart: one sink call each
    assert not plain.streamed and plain.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_a_sink_error_ends_the_exchange_and_the_pool_recovers(serve_app):
    async def handler(request):
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: 1\n\n")
        await asyncio.sleep(0.05)
        await resp.write(b"data: 2\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1", handler)
    url = await serve_app(app)

    def sink(chunk):
        raise KeyError("the consumer gave up")

    pool = Http1Pool(url + "/v1", HEADERS, limit=1)
    try:
        with pytest.raises(KeyError):
            await pool.post(b"{}", 5, sink)
        got = []
        reply = await pool.post(b"{}", 5, got.append)  # the broken connection was not reused
        assert reply.streamed and b"".join(got) == b"data: 1\n\ndata: 2\n\n"
    finally:
        await pool.close()


async def test_server_closing_idle_connections_costs_no_request(serve_raw):
    peers = []

    async def one_shot(reader, writer):
        peers.append(1)
        await read_http_request(reader)
        writer.write(ok())
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()  # idle close after answering (a short keep-alive timeout)

    url = await serve_raw(one_shot)
    pool = Http1Pool(url + "/v1", HEADERS, limit=4)
    try:
        for _ in range(3):
            assert (await pool.post(b"{}", 5)).status == 200
            await asyncio.sleep(0.1)
    finally:
        await pool.close()
    assert len(peers) == 3  # each request found its idle connection gone and opened a new one


async def test_connection_close_header_is_honoured(serve_raw):
    peers = []
    url = await serve_raw(raw_server(lambda n: ok(extra=b"Connection: close\r\n"), peers=peers))
    pool = Http1Pool(url + "/v1", HEADERS, limit=4)
    try:
        for _ in range(3):
            assert (await pool.post(b"{}", 5)).status == 200
    finally:
        await pool.close()
    assert len(peers) == 3


@pytest.mark.parametrize("answer, error", [
    (b"NOT HTTP AT ALL\r\n\r\n", BadResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Disconnected),
    (None, Disconnected),
    (ok(b"x" * 5000), BadResponse),  # larger than the pool's cap
    (ok(b"x", b"Content-Encoding: br\r\n"), BadResponse),
])
async def test_failures_are_classified(serve_raw, answer, error):
    async def handler(reader, writer):
        await read_http_request(reader)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    url = await serve_raw(handler)
    pool = Http1Pool(url + "/v1", HEADERS, limit=2, max_body_bytes=4096)
    try:
        with pytest.raises(error):
            await pool.post(b"{}", 5)
    finally:
        await pool.close()


async def test_refused_connection_and_timeout(serve_raw):
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = Http1Pool(f"http://127.0.0.1:{port}/v1", HEADERS, limit=2)
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await pool.post(b"{}", 5)
    await pool.close()

    async def silent(reader, writer):
        await read_http_request(reader)
        await asyncio.sleep(3)
        writer.close()

    url = await serve_raw(silent)
    pool = Http1Pool(url + "/v1", HEADERS, limit=1)
    loop = asyncio.get_running_loop()
    try:
        t = loop.time()
        with pytest.raises(TimeoutError):
            await pool.post(b"{}", 0.2)
        assert loop.time() - t < 1.5
        await asyncio.sleep(0.01)
        assert pool.open_connections == 0  # the timed-out connection was dropped, its slot is free
    finally:
        await pool.close()


async def test_cancellation_drops_the_connection_and_frees_its_slot(serve_raw):
    async def slow(reader, writer):
        try:
            while True:
                await read_http_request(reader)
                await asyncio.sleep(0.3)
                writer.write(ok())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    url = await serve_raw(slow)
    pool = Http1Pool(url + "/v1", HEADERS, limit=1)
    try:
        task = asyncio.create_task(pool.post(b"{}", 5))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        assert pool.open_connections == 0
        assert (await pool.post(b"{}", 5)).status == 200  # a fresh connection, not the half-used one
    finally:
        await pool.close()


async def test_prewarm_opens_idle_connections_used_by_later_requests(serve_raw):
    peers = []
    url = await serve_raw(raw_server(lambda n: ok(), peers=peers))
    pool = Http1Pool(url + "/v1", HEADERS, limit=5)
    try:
        assert await pool.prewarm(8) == 5  # capped at the limit
        await asyncio.gather(*(pool.post(b"{}", 5) for _ in range(5)))
        assert len(peers) == 5 and pool.open_connections == 5
    finally:
        await pool.close()


async def test_https_verifies_certificates_unless_told_not_to(tmp_path):
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(request):
        return web.json_response({"tls": True, "body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/v1", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        strict = Http1Pool(f"https://127.0.0.1:{port}/v1", HEADERS, limit=1)
        with pytest.raises(ConnectFailed, match="certificate"):
            await strict.post(b"{}", 5)
        await strict.close()
        lax = Http1Pool(f"https://127.0.0.1:{port}/v1", HEADERS, limit=1, verify_tls=False)
        try:
            reply = await lax.post(b'{"q":1}', 5)
            assert reply.status == 200 and json.loads(reply.body) == {"tls": True, "body": '{"q":1}'}
            assert (await lax.post(b"{}", 5)).status == 200 and lax.open_connections == 1  # keep-alive over TLS
        finally:
            await lax.close()
    finally:
        await runner.cleanup()
