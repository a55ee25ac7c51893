"""aiohttp's client behind the transport seam the lean pool offers: post(payload, timeout_s, sink) -> Reply.

`http_client: aiohttp` keeps aiohttp's connection handling; the OpenAI protocol on top of it is
the same code as on the lean pool (drive/client.py), so the two cannot disagree (redirects are
not followed by either: a 3xx is an invalid response, named with its Location).
"""

from __future__ import annotations

import asyncio

import aiohttp

from .http1 import BadResponse, ChunkSink, ConnectFailed, Disconnected, Reply, connect_error_text

PREWARM_TIMEOUT_S = 5.0
ERROR_BODY_CAP = 64 * 1024  # an error answer is read this far at most (its message is all that is kept)


class AiohttpTransport:
    """One candidate's aiohttp session: at most `limit` connections, TLS verified unless told otherwise."""

    def __init__(self, url: str, headers: dict[str, str], *, limit: int, verify_tls: bool = True,
                 max_body_bytes: int = 16 * 1024 * 1024, session: aiohttp.ClientSession | None = None,
                 models_url: str | None = None) -> None:
        if session is None:
            connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ssl=verify_tls, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)
        self.session = session
        self.url = url
        self.models_url = models_url  # GET here to open pooled connections before the first send
        self._headers = headers
        self.max_body_bytes = max_body_bytes

    async def post(self, payload: bytes, timeout_s: float, sink: ChunkSink | None = None) -> Reply:
        """POST `payload`; a streamed (text/event-stream, 2xx) body goes to `sink` as it arrives.

        Raises ConnectFailed, Disconnected, BadResponse, TimeoutError, or what the sink raised."""
        try:
            async with self.session.post(self.url, data=payload, headers=self._headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
                retry_after, location = resp.headers.get("Retry-After"), resp.headers.get("Location")
                if 200 <= status < 300 and sink is not None and "text/event-stream" in ctype:
                    await self._stream(resp, sink)
                    return Reply(status, ctype, b"", True, retry_after, location)
                cap = self.max_body_bytes if status < 400 else min(self.max_body_bytes, ERROR_BODY_CAP)
                body = await _read_capped(resp, cap, truncate=status >= 400)
                return Reply(status, ctype, body, False, retry_after, location)
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(connect_error_text(exc.host, exc.port, exc.os_error if exc.os_error is not None else exc)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise Disconnected(f"{type(exc).__name__}: {exc}") from None
        except aiohttp.ClientResponseError as exc:
            raise BadResponse(f"{type(exc).__name__}: {exc.message}") from None

    async def _stream(self, resp: aiohttp.ClientResponse, sink: ChunkSink) -> None:
        total = 0
        cap = self.max_body_bytes
        async for chunk in resp.content.iter_any():
            total += len(chunk)
            if total > cap:
                raise BadResponse(f"response larger than {cap} bytes")
            sink(chunk)

    async def prewarm(self, n: int, timeout_s: float = PREWARM_TIMEOUT_S) -> int:
        """Open `n` pooled keep-alive connections with concurrent GETs of /models; returns how many
        answered.  Failures are ignored: the run's own requests report any real problem."""
        url = self.models_url
        if url is None:
            return 0
        timeout = aiohttp.ClientTimeout(total=timeout_s)

        async def one() -> bool:
            try:
                async with self.session.get(url, headers=self._headers, timeout=timeout) as resp:
                    await resp.read()
                    return True
            except (TimeoutError, aiohttp.ClientError, OSError):
                return False

        return sum(await asyncio.gather(*(one() for _ in range(n))))

    async def close(self) -> None:
        await self.session.close()


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, truncate: bool = False) -> bytes:
    """The body, at most `cap` bytes: larger is a BadResponse (or, for error answers, cut short)."""
    declared = resp.content_length
    if declared is not None and (declared <= cap or not truncate):
        if declared > cap:
            raise BadResponse(f"response declares {declared} bytes, more than the {cap}-byte cap")
        return await resp.read()  # bounded by Content-Length, which aiohttp enforces: one await, no iterator
    parts: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_any():
        total += len(chunk)
        if total > cap:
            if truncate:
                parts.append(chunk[: cap - (total - len(chunk))])
                break
            raise BadResponse(f"response larger than {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)
