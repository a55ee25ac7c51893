"""`loadbench calibrate`: measure one worker's ceiling against the pre-rendered loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.execute import MetricsOptions, execute
from ..scale.calibration import HEADROOM, save_calibration
from ..scale.procenv import cpu_count
from ..sim.process import start_sim, stop_sim
from .adhoc import adhoc_scenario


class CalibrationFailed(RuntimeError):
    """The measurement gave no usable number; the message says why and what to change."""


async def measure(seconds: float = 5.0, concurrency: int = 64, chunks: int = 200,
                  log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Closed-loop request rate of one sending process, non-streaming and streaming.  On two or
    more CPUs the server is pinned to the last one and this process kept off it."""
    cores = cpu_count()
    server_cpu = max(os.sched_getaffinity(0)) if cores >= 2 else None
    extra = ["--static", "--chunks", str(chunks)] + (["--cpu", str(server_cpu)] if server_cpu is not None else [])
    sim = await start_sim("instant", None, 0, extra=extra)
    before = os.sched_getaffinity(0)
    if server_cpu is not None:
        os.sched_setaffinity(0, before - {server_cpu})
    out: dict[str, Any] = {"cores": cores, "concurrency": concurrency, "seconds": seconds, "chunks": chunks,
                           "server_pinned": server_cpu is not None}
    try:
        with tempfile.TemporaryDirectory(prefix="loadbench-calibrate-") as tmp:
            for stream in (False, True):
                log(f"measuring one worker, {'streaming' if stream else 'non-streaming'}, {seconds:g} s ...")
                resolved = adhoc_scenario(sim.base_url, mode="closed", rate=1.0, concurrency=concurrency, duration_s=seconds,
                                          stream=stream, model="static", prompt_words=8, max_tokens=None, timeout_s=30.0,
                                          max_in_flight=4096, warmup_s=1.0)
                result = await execute(resolved, out_root=Path(tmp), quiet=True, metrics=MetricsOptions(port=None),
                                       install_signal_handlers=False)
                c = result.summary["candidates"]["target"]
                errors = c["requests"]["error_total"]
                if errors:
                    raise CalibrationFailed(f"{errors} requests failed against the calibration server")
                if not c["throughput_rps"]:  # nothing finished inside the window: no rate to report
                    raise CalibrationFailed(f"no {'streamed ' if stream else ''}request finished in the {seconds:g} s "
                                            f"measurement window ({c['requests']['sent']} sent): try a longer --seconds")
                key = "worker_stream_rps" if stream else "worker_rps"
                out[key] = c["throughput_rps"]
                if stream:
                    out["worker_stream_events_per_s"] = c["throughput_rps"] * chunks
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)
        await stop_sim(sim)
    return out


def recommendation_lines(cal: dict[str, Any], rates: tuple[float, ...] = (100, 500, 1000, 2000, 5000, 10000)) -> list[str]:
    lines = [f"one worker: {cal['worker_rps']:,.0f} req/s non-streaming, {cal['worker_stream_rps']:,.0f} req/s streaming "
             f"({cal['worker_stream_events_per_s']:,.0f} SSE events/s), {cal['concurrency']} in flight"]
    lines.append(f"workers planned at {HEADROOM:.0%} of that ceiling; this machine has {cal['cores']} usable CPU(s):")
    for rate in rates:
        need = math.ceil(rate / (cal["worker_stream_rps"] * HEADROOM))
        note = "" if need <= cal["cores"] else f"  (more than this machine's {cal['cores']} CPUs: spread over machines with --ray)"
        lines.append(f"  {rate:>8,.0f} req/s streaming (all candidates together): --workers {need}{note}")
    return lines


def run_calibration(seconds: float, concurrency: int, chunks: int, log: Callable[[str], None]) -> tuple[dict[str, Any], Path]:
    cal = asyncio.run(measure(seconds, concurrency, chunks, log))
    return cal, save_calibration(cal)
