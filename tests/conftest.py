"""Shared fixtures: real servers on loopback (aiohttp apps and raw TCP handlers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Start an aiohttp app on 127.0.0.1 (random port); returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def serve_raw() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start a raw TCP server whose handler gets (reader, writer); returns its base URL."""
    servers: list[asyncio.base_events.Server] = []

    async def start(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        with contextlib.suppress(TimeoutError):  # a handler still holding a connection
            await asyncio.wait_for(server.wait_closed(), 2)


async def read_http_request(reader: asyncio.StreamReader) -> bytes:
    """Consume one HTTP/1.1 request (headers + Content-Length body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length) if length else b""


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """One short run of the demo scenario (with scoring and the simulated judge), shared by tests
    that read a finished run; tests that modify it copy it first."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo-run")
    proc = subprocess.run(
        [sys.executable, "-m", "loadbench", "run", str(ROOT / "scenarios" / "demo.yaml"), "--duration", "5",
         "--set", "load.warmup_s=1", "--set", "load.rate_qps=12", "--out", str(out), "--quiet", "--fail-on", "none"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr[-3000:]}\nstdout:\n{proc.stdout[-3000:]}"
    (run_dir,) = list(out.iterdir())
    return run_dir


# Modules whose tests start processes, run scenarios end to end or drive real servers for
# seconds each: marked slow, so `pytest -m "not slow"` stays a quick inner loop.
SLOW_MODULES = {
    "test_service", "test_service_security", "test_prometheus_e2e", "test_reports", "test_cli", "test_adhoc",
    "test_rescore", "test_workers", "test_ray_pool", "test_calibration", "test_kill", "test_sweep", "test_sessions",
    "test_faults", "test_conversation", "test_retries_abort", "test_secrets", "test_coordinated_omission", "test_api",
    "test_trace", "test_bad_input", "test_judge", "test_needle", "test_review", "test_llama_server", "test_server_view", "test_scrape_faults", "test_readme_excerpt", "test_fidelity_run",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
