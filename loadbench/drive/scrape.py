"""Scrape each deployment's own /metrics in threads of their own, never on the sending loop."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import orjson

from ..stats.server import NotPrometheus, detect_preset, parse_exposition, role_gauges

USER_AGENT = "loadbench-scraper"


@dataclass(slots=True)
class ScrapeTarget:
    candidate: str
    url: str
    interval_s: float
    timeout_s: float
    max_bytes: int
    preset: str = "auto"
    verify_tls: bool = True


class _Fetcher:
    """One keep-alive connection to one metrics URL; every failure becomes a class, never an exception."""

    def __init__(self, target: ScrapeTarget) -> None:
        self.target = target
        parts = urlsplit(target.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            t = self.target
            if self._https:
                context = ssl.create_default_context()
                if not t.verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=t.timeout_s, context=context)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=t.timeout_s)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def fetch(self) -> tuple[str | None, str | None, str]:
        """(body, error class, detail).  Bounded by the target's timeout in total, not per read."""
        t = self.target
        deadline = time.monotonic() + t.timeout_s
        try:
            conn = self._connection()
            conn.request("GET", self._path, headers={"Accept": "text/plain", "User-Agent": USER_AGENT})
            resp = conn.getresponse()
            if resp.status != 200:
                resp.read(65536)
                self.close()  # redirects are not followed: a metrics URL answers itself
                return None, f"http_{resp.status}", f"HTTP {resp.status}"
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    self.close()
                    return None, "timeout", f"no complete page within {t.timeout_s:g}s"
                chunk = resp.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > t.max_bytes:
                    self.close()
                    return None, "too_big", f"more than {t.max_bytes} bytes"
                chunks.append(chunk)
            return b"".join(chunks).decode("utf-8", "replace"), None, ""
        except ConnectionRefusedError:
            self.close()
            return None, "refused", "connection refused"
        except TimeoutError:
            self.close()
            return None, "timeout", f"no answer within {t.timeout_s:g}s"
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return None, "connect", type(exc).__name__


@dataclass(slots=True)
class _TargetState:
    fetcher: _Fetcher
    preset: str
    latest: dict[str, float] = field(default_factory=dict)  # running / waiting / kv_usage, last good scrape
    thread: threading.Thread | None = None


class ServerScraper:
    """Scrapes every target before the first request, every interval while the run goes, and after the
    last response; each scrape becomes one line of server_metrics.jsonl."""

    def __init__(self, targets: list[ScrapeTarget], out_path: Path, now_ns: Callable[[], int]) -> None:
        self._states = {t.candidate: _TargetState(_Fetcher(t), t.preset) for t in targets}
        self._now_ns = now_ns
        self._out: IO[bytes] | None = open(out_path, "ab")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t0_ns: int | None = None
        self._held: list[dict[str, Any]] = []  # the "before" lines, written once t0 is known

    # ------------------------------------------------------------------ public

    def latest(self, candidate: str) -> dict[str, float]:
        state = self._states.get(candidate)
        return dict(state.latest) if state is not None else {}

    def scrape_before(self) -> None:
        """One scrape of every target, in parallel, before the first request (blocking; bounded by timeouts)."""
        self._in_parallel("before")

    def begin(self, t0_ns: int) -> None:
        """The run's time origin is known: write the 'before' lines and start the periodic threads."""
        self._t0_ns = t0_ns
        for line in self._held:
            line["t_s"] = (line.pop("_ns") - t0_ns) / 1e9
            self._write(line)
        self._held.clear()
        for name, state in self._states.items():
            state.thread = threading.Thread(target=self._loop, args=(name,), name=f"scrape-{name}", daemon=True)
            state.thread.start()

    def finish(self) -> None:
        """Stop the periodic threads, scrape once more after the last response, close the file."""
        if self._out is None:
            return
        self._stop.set()
        for state in self._states.values():
            if state.thread is not None:
                state.thread.join(timeout=state.fetcher.target.timeout_s + 1.0)
        self._in_parallel("after")
        self.close()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
        for state in self._states.values():
            state.fetcher.close()

    # ------------------------------------------------------------------ internals

    def _in_parallel(self, phase: str) -> None:
        threads = [threading.Thread(target=self._scrape, args=(name, phase), daemon=True) for name in self._states]
        for thread in threads:
            thread.start()
        for thread, state in zip(threads, self._states.values()):
            thread.join(timeout=state.fetcher.target.timeout_s + 1.0)

    def _loop(self, name: str) -> None:
        interval_s = self._states[name].fetcher.target.interval_s
        next_s = time.monotonic() + interval_s
        while not self._stop.wait(max(0.0, next_s - time.monotonic())):
            self._scrape(name, "during")
            next_s += interval_s
            now = time.monotonic()
            if next_s < now:  # a slow scrape: skip the ticks it overran instead of bursting
                next_s = now + interval_s

    def _scrape(self, name: str, phase: str) -> None:
        state = self._states[name]
        started_ns = self._now_ns()
        body, error, detail = state.fetcher.fetch()
        line: dict[str, Any] = {"candidate": name, "phase": phase, "ok": False, "error": error,
                                "duration_s": (self._now_ns() - started_ns) / 1e9}
        if body is not None:
            line["bytes"] = len(body)
            try:
                parsed = parse_exposition(body)
            except NotPrometheus as exc:
                line["error"], detail = "not_prometheus", str(exc)
            else:
                if state.preset == "auto":
                    state.preset = detect_preset(parsed.kinds)
                line.update(ok=True, error=None, samples=parsed.samples, kinds=parsed.kinds, cut=parsed.cut)
                state.latest = role_gauges(parsed.samples, state.preset)
        if not line["ok"]:
            line["detail"] = detail
        if self._t0_ns is None:
            line["_ns"] = started_ns
            with self._lock:
                self._held.append(line)
            return
        line["t_s"] = (started_ns - self._t0_ns) / 1e9
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        data = orjson.dumps(line) + b"\n"
        with self._lock:
            if self._out is not None:
                self._out.write(data)
                self._out.flush()


__all__ = ["ScrapeTarget", "ServerScraper"]
