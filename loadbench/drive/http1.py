"""Lean HTTP/1.1 keep-alive client on asyncio protocols (llhttp via httptools) for the sending hot path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# A chunk sink for streamed bodies; it may raise, which ends the exchange with that exception.
ChunkSink = Callable[[bytes], None]


def connect_error_text(host: str, port: int | None, exc: BaseException) -> str:
    """A connection failure in words, the same from either HTTP client: 'cannot connect to
    127.0.0.1:8000: connection refused' (not an errno tuple, nor aiohttp's 'ssl:default')."""
    if isinstance(exc, OSError) and exc.errno:
        reason = os.strerror(exc.errno)  # asyncio words it "Connect call failed (addr)"; the errno says why
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = str(exc) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"the server's TLS certificate did not verify ({exc.verify_message or exc.reason})"
    elif isinstance(exc, ssl.SSLError):
        reason = f"the TLS handshake failed ({exc.reason or exc})"
    return f"cannot connect to {host}:{port}: {reason}"


class ConnectFailed(Exception):
    """No connection could be opened (refused, unresolvable, unreachable, TLS handshake)."""


class Disconnected(Exception):
    """The connection closed or reset before the response was complete."""


class BadResponse(Exception):
    """The peer answered with something that is not valid HTTP/1.1 (or exceeds a cap)."""


@dataclass(slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes  # empty when the body went to the chunk sink
    streamed: bool
    retry_after: str | None
    location: str | None


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def request_head(target: Target, headers: dict[str, str]) -> bytes:
    """Everything of a POST request up to the Content-Length value, built once per candidate."""
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}", "User-Agent: loadbench", "Accept: */*"]
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"header {name!r} has characters HTTP does not allow")
        if name.lower() not in ("host", "content-length", "connection", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one exchange at a time."""

    def __init__(self, pool: Http1Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.alive = True
        self._fut: asyncio.Future[Reply] | None = None
        self._sink: ChunkSink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._ctype = ""
        self._retry_after: str | None = None
        self._location: str | None = None
        self._encoding = ""
        self._until_close = True  # neither Content-Length nor chunked: the body ends at close
        self._headers_done = False
        self._streaming = False
        self._parts: list[bytes] = []
        self._pending: list[bytes] = []
        self._total = 0
        self._inflate: zlib._Decompress | None = None  # type: ignore[name-defined]

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._pool._conns.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._fut is None:  # bytes nobody asked for: the connection cannot be trusted
            self.alive = False
            if self.transport is not None:
                self.transport.abort()
            return
        try:
            self._parser.feed_data(data)
            if self._pending:  # one sink call per read, however many chunks it held
                self._flush()
        except httptools.HttpParserCallbackError as exc:  # raised by our own callbacks (a sink or a cap)
            self._fail(exc.__context__ or BadResponse(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"malformed HTTP response: {exc}"))
        except Exception as exc:  # what the sink raised
            self._fail(exc)

    def _flush(self) -> None:
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._sink(data)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._pool._lost(self)
        if self._fut is not None:
            if self._headers_done and self._until_close and exc is None:
                try:
                    self.on_message_complete()  # an HTTP/1.0-style body that ends when the peer closes
                except Exception as error:  # what the sink raised on the last bytes
                    self._finish(error)
            else:
                self._finish(Disconnected("connection closed before the response was complete"
                                          if exc is None else f"connection lost: {exc}"))

    # ---------------------------------------------------------------- parser callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"content-type":
            self._ctype = value.decode("latin-1")
        elif key == b"content-length" or (key == b"transfer-encoding" and b"chunked" in value.lower()):
            self._until_close = False
        elif key == b"retry-after":
            self._retry_after = value.decode("latin-1")
        elif key == b"location":
            self._location = value.decode("latin-1")
        elif key == b"content-encoding":
            self._encoding = value.decode("latin-1").strip().lower()

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        if self._status < 200:
            return
        if self._encoding and self._encoding != "identity":
            if self._encoding not in ("gzip", "deflate", "x-gzip"):
                raise BadResponse(f"unsupported Content-Encoding {self._encoding!r}")
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        self._streaming = self._sink is not None and self._status < 300 and "text/event-stream" in self._ctype

    def on_body(self, body: bytes) -> None:
        if self._inflate is not None:
            try:
                body = self._inflate.decompress(body)
            except zlib.error as exc:
                raise BadResponse(f"cannot decompress the body: {exc}") from None
        self._total += len(body)
        if self._total > self._pool.max_body_bytes:
            raise BadResponse(f"response larger than {self._pool.max_body_bytes} bytes")
        if self._streaming:
            self._pending.append(body)
        else:
            self._parts.append(body)

    def on_message_complete(self) -> None:
        if self._fut is None:  # a second answer nobody asked for: never reuse this connection
            self.alive = False
            return
        if self._status < 200:  # an interim 1xx answer: the real one follows
            self._reset()
            return
        if self._pending:
            self._flush()
        body = b"".join(self._parts) if len(self._parts) != 1 else self._parts[0]
        reply = Reply(self._status, self._ctype, body, self._streaming, self._retry_after, self._location)
        keep = self.alive and self._parser.should_keep_alive() and not self._until_close
        self._finish(reply)
        if keep:
            self._pool._release(self)
        elif self.transport is not None:
            self.alive = False
            self.transport.close()

    # ---------------------------------------------------------------- exchange
    def start(self, data: bytes, sink: ChunkSink | None, deadline: float) -> asyncio.Future[Reply]:
        loop = self._pool.loop
        fut: asyncio.Future[Reply] = loop.create_future()
        self._fut = fut
        self._sink = sink
        self._reset()
        self._timer = loop.call_at(deadline, self._timed_out)
        self.transport.write(data)  # type: ignore[union-attr]
        return fut

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        self.alive = False
        self._finish(exc)
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, result: Reply | BaseException) -> None:
        fut, self._fut, self._sink = self._fut, None, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if fut is None or fut.done():
            return
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)

    def abort(self) -> None:
        """Give up on the exchange in progress (cancellation): the connection cannot be reused."""
        self.alive = False
        self._fut = self._sink = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()


class Http1Pool:
    """Keep-alive connections to one origin, at most `limit` open; POSTs one request per connection at a time."""

    def __init__(self, url: str, headers: dict[str, str], *, limit: int, verify_tls: bool = True,
                 max_body_bytes: int = 16 * 1024 * 1024) -> None:
        self.target = Target.parse(url)
        self._head = request_head(self.target, headers)
        self.limit = limit
        self.max_body_bytes = max_body_bytes
        self._ssl: ssl.SSLContext | None = None
        if self.target.scheme == "https":
            self._ssl = ssl.create_default_context()
            if not verify_tls:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._idle: deque[_Conn] = deque()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self._conns: set[_Conn] = set()
        self._closed = False
        self.loop = asyncio.get_running_loop()

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    async def post(self, payload: bytes, timeout_s: float, sink: ChunkSink | None = None) -> Reply:
        """POST `payload`; a streamed (text/event-stream, 2xx) body goes to `sink` as it arrives.

        Raises ConnectFailed, Disconnected, BadResponse, TimeoutError, or what the sink raised."""
        loop = self.loop
        deadline = loop.time() + timeout_s
        conn = await self._acquire(deadline)
        fut = conn.start(self._head + b"%d\r\n\r\n" % len(payload) + payload, sink, deadline)
        try:
            return await fut
        except asyncio.CancelledError:
            conn.abort()
            raise

    async def _acquire(self, deadline: float) -> _Conn:
        if self._closed:
            raise ConnectFailed("the client is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed by the peer
            if conn.alive:
                return conn
        if len(self._conns) + self._connecting < self.limit:
            return await self._connect(deadline)
        waiter: asyncio.Future[_Conn | None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            conn = await asyncio.wait_for(waiter, max(0.0, deadline - self.loop.time()))
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self._release(waiter.result())  # type: ignore[arg-type]
            raise
        return conn if conn is not None else await self._connect(deadline)

    async def _connect(self, deadline: float) -> _Conn:
        t = self.target
        self._connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Conn(self), t.host, t.port, ssl=self._ssl,
                                            server_hostname=t.host if self._ssl else None),
                max(0.001, deadline - self.loop.time()))
        except (OSError, ssl.SSLError, ValueError) as exc:  # TimeoutError is an OSError: it stays a timeout
            if isinstance(exc, TimeoutError):
                raise
            raise ConnectFailed(connect_error_text(t.host, t.port, exc)) from None
        finally:
            self._connecting -= 1
        return conn

    def _release(self, conn: _Conn) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if self._closed:
            conn.abort()
        else:
            self._idle.append(conn)

    def _lost(self, conn: _Conn) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            while self._waiters:  # a slot came free: a waiter may open a new connection
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    async def prewarm(self, n: int, timeout_s: float = 5.0) -> int:
        """Open up to `n` idle connections before the first send; returns how many are open."""
        deadline = self.loop.time() + timeout_s
        wanted = max(0, min(n, self.limit) - len(self._conns) - self._connecting)
        results = await asyncio.gather(*(self._connect(deadline) for _ in range(wanted)), return_exceptions=True)
        for conn in results:
            if isinstance(conn, _Conn):
                self._idle.append(conn)
        return len(self._conns)

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        await asyncio.sleep(0)  # let the transports run their close callbacks
