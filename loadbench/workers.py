"""Scale-out on one machine: worker processes send a partition of the schedule each.

The coordinator (the `loadbench run` process) starts the workers, gives them one shared
start time (CLOCK_MONOTONIC is the same in every process), and receives every finished
record over a socket.  It records them itself, so histograms merge exactly and counters
sum, then scores, logs and serves /metrics as for a single process.  Each worker has its
own uvloop, connection pools and pacer; the records are the same as one process's
because partitions keep the whole plan's positions, items and intended times.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .clock import Clock, MonotonicClock
from .errors import ConfigError
from .records import RequestResult, result_from_dict
from .runner import Lane, Runner, RunOutcome, Sink

if TYPE_CHECKING:
    from .engine import Resolved


def worker_spec(resolved: Resolved, base_urls: dict[str, str]) -> dict[str, Any]:
    """What a worker needs to send its partition: the scenario, the items, the trace plan."""
    trace = resolved.trace
    return {
        "scenario": resolved.scenario.model_dump(mode="json", by_alias=True),
        "scenario_path": resolved.scenario_path,
        "items": [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in resolved.items],
        "trace": None if trace is None else {"offsets_ns": trace.offsets_ns.tolist(), "item_of_row": trace.item_of_row,
                                             "span_s": trace.span_s, "rows": trace.rows},
        "base_urls": base_urls,
    }

HEADER = struct.Struct("!IB")  # payload length, frame kind
FLUSH_S = 0.02
READY_TIMEOUT_S = 120.0

# Frames.  Worker -> coordinator: R records, S status, O ready, E end, X failure.
# Coordinator -> worker: G go (start time), T stop (a second T: cancel now).
RECORDS, STATUS, READY, END, FAILED, GO, STOP, SPEC = b"R", b"S", b"O", b"E", b"X", b"G", b"T", b"P"


def frame(kind: bytes, payload: Any) -> bytes:
    body = orjson.dumps(payload)
    return HEADER.pack(len(body), kind[0]) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, Any] | None:
    try:
        head = await reader.readexactly(HEADER.size)
        length, kind = HEADER.unpack(head)
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return bytes([kind]), orjson.loads(body)


def child_env() -> dict[str, str]:
    """The environment for our child processes: this very copy of loadbench first on the path."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------- worker side

async def worker_main(fd: int) -> int:
    """Run one partition; the spec arrives as the first frame on the socket `fd`."""
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    first = await read_frame(reader)
    if first is None:
        return 1
    _, spec = first
    try:
        return await _run_partition(spec, reader, writer)
    except ConfigError as err:
        writer.write(frame(FAILED, {"error": "; ".join(str(p) for p in err.problems)}))
    except Exception as exc:  # reported to the coordinator, which names the worker
        writer.write(frame(FAILED, {"error": f"{type(exc).__name__}: {exc}"}))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()
    return 1


async def _run_partition(spec: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    from .dataset import Item
    from .engine import Resolved, build_plan
    from .lanes import build_lanes, prewarm_lanes
    from .scenario import Scenario
    from .trace import TraceReplay

    scenario = Scenario.model_validate(spec["scenario"])
    items = [Item.model_validate(x) for x in spec["items"]]
    secrets = {}
    for c in scenario.candidates:  # keys travel by environment only, never over the socket
        if c.api_key_env:
            secret = os.environ.get(c.api_key_env)
            if not secret:
                raise ConfigError.single(spec["scenario_path"], f"environment variable {c.api_key_env} is not set")
            secrets[c.name] = secret
    trace = None
    if spec.get("trace") is not None:
        t = spec["trace"]
        trace = TraceReplay(np.asarray(t["offsets_ns"], dtype=np.int64), t["item_of_row"], items, t["span_s"], t["rows"], False)
    resolved = Resolved(scenario, spec["scenario_path"], None, items, secrets, [], trace=trace)
    clock = MonotonicClock()
    loop = asyncio.get_running_loop()
    lanes, sessions = build_lanes(resolved, spec["base_urls"], clock)
    await prewarm_lanes(resolved, sessions, spec["base_urls"])
    plan = build_plan(scenario, resolved.items, resolved.trace).partition(spec["index"], spec["count"])
    pending: list[RequestResult] = []
    lags: list[int] = []
    flush_scheduled = False
    flush_handle: asyncio.TimerHandle | None = None

    def flush() -> None:
        nonlocal pending, flush_scheduled
        flush_scheduled = False
        if writer.is_closing():
            return
        status = {"in_flight": {lane.name: lane.in_flight for lane in lanes}, "dispatched": runner.dispatched, "lags_us": lags[:]}
        lags.clear()
        if pending:
            batch, pending = pending, []
            writer.write(frame(RECORDS, batch))
        writer.write(frame(STATUS, status))

    def sink(r: RequestResult) -> None:
        nonlocal flush_scheduled, flush_handle
        pending.append(r)
        if not flush_scheduled:
            flush_scheduled = True
            flush_handle = loop.call_later(FLUSH_S, flush)

    runner = Runner(plan, lanes, sink, clock, on_saturation=scenario.load.on_saturation,
                    grace_ns=int(scenario.load.grace_s * 1e9), loop_lag_sink=lags.append)

    async def control() -> None:
        while True:
            got = await read_frame(reader)
            if got is None:  # the coordinator is gone: stop now, nobody would record the rest
                runner.request_stop("the coordinator went away")
                runner.request_stop("the coordinator went away")
                return
            kind, payload = got
            if kind == STOP:
                runner.request_stop(payload.get("reason", "stopped"))

    writer.write(frame(READY, {"pid": os.getpid()}))
    await writer.drain()
    got = await read_frame(reader)
    if got is None or got[0] != GO:
        return 1
    t0_ns = int(got[1]["t0_ns"])
    controller = loop.create_task(control())

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.25)
            if not flush_scheduled:
                flush()
            if writer.transport.get_write_buffer_size() > 8 << 20:
                await writer.drain()

    tick = loop.create_task(ticker())
    gc.collect()
    gc.freeze()
    cpu_before = time.thread_time()
    wall_before = clock.now_ns()
    try:
        outcome = await runner.run(t0_ns)
    finally:
        tick.cancel()
        controller.cancel()
        await asyncio.gather(tick, controller, return_exceptions=True)
        gc.unfreeze()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    cpu_ratio = (time.thread_time() - cpu_before) / max((clock.now_ns() - wall_before) / 1e9, 1e-9)
    if flush_handle is not None:
        flush_handle.cancel()
    flush()
    writer.write(frame(END, {
        "end_ns": outcome.end_ns, "dispatched": outcome.dispatched, "planned": outcome.planned,
        "stop_reason": outcome.stop_reason, "cancelled_in_flight": outcome.cancelled_in_flight,
        "dispatch_end_ns": outcome.extra.get("dispatch_end_ns", 0), "loop_cpu_ratio": cpu_ratio,
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
    }))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()
    return 0


# -------------------------------------------------------------------- coordinator side

@dataclass(slots=True)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    in_flight: dict[str, int] = field(default_factory=dict)
    dispatched: int = 0
    end: dict[str, Any] | None = None
    failure: str | None = None


class WorkerPool:
    """Drop-in for Runner in the engine: same run / request_stop / stopping / dispatched."""

    def __init__(self, spec: dict[str, Any], count: int, lanes: list[Lane], sink: Sink, clock: Clock, *,
                 grace_ns: int, loop_lag_sink: Any = None) -> None:
        self._spec = spec
        self.count = count
        self.lanes = lanes  # proxies: their in_flight is the sum the workers report
        self.sink = sink
        self.clock = clock
        self.grace_ns = grace_ns
        self._loop_lag_sink = loop_lag_sink
        self._workers: list[_Worker] = []
        self.stop_reason = "completed"
        self._stops = 0
        self.t0_ns = 0
        self.loop_cpu_ratio: float | None = None
        self.worker_report: list[dict[str, Any]] = []

    @property
    def stopping(self) -> bool:
        return self._stops > 0

    @property
    def dispatched(self) -> int:
        return sum(w.dispatched for w in self._workers)

    @property
    def in_flight(self) -> int:
        return sum(sum(w.in_flight.values()) for w in self._workers)

    async def start(self) -> None:
        """Spawn every worker and wait until each has built its payloads and is ready."""
        for index in range(self.count):
            parent, child = socket.socketpair()
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "loadbench", "worker", "--fd", str(child.fileno()),
                    stdin=asyncio.subprocess.DEVNULL, pass_fds=(child.fileno(),), env=child_env(),
                    start_new_session=True,  # Ctrl-C reaches the coordinator, which stops the workers
                )
            finally:
                child.close()
            reader, writer = await asyncio.open_connection(sock=parent)
            worker = _Worker(index, proc, reader, writer)
            self._workers.append(worker)
            writer.write(frame(SPEC, {**self._spec, "index": index, "count": self.count}))
        ready = await asyncio.wait_for(asyncio.gather(*(read_frame(w.reader) for w in self._workers)), READY_TIMEOUT_S)
        problems = []
        for w, got in zip(self._workers, ready):
            if got is None:
                problems.append(f"worker {w.index} exited before it was ready")
            elif got[0] == FAILED:
                problems.append(f"worker {w.index}: {got[1].get('error')}")
        if problems:
            await self.close()
            raise RuntimeError("; ".join(problems))

    def request_stop(self, reason: str = "interrupted") -> None:
        if self._stops == 0:
            self.stop_reason = reason
        self._stops += 1
        for w in self._workers:
            with contextlib.suppress(ConnectionError, RuntimeError):
                w.writer.write(frame(STOP, {"reason": reason}))

    async def run(self, t0_ns: int | None = None) -> RunOutcome:
        self.t0_ns = self.clock.now_ns() if t0_ns is None else t0_ns
        for w in self._workers:
            w.writer.write(frame(GO, {"t0_ns": self.t0_ns}))
        await asyncio.gather(*(self._pump(w) for w in self._workers))
        for w in self._workers:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(w.proc.wait(), 10)
        return self._outcome()

    async def _pump(self, w: _Worker) -> None:
        sink = self.sink
        lanes = {lane.name: lane for lane in self.lanes}
        while True:
            got = await read_frame(w.reader)
            if got is None:
                if w.end is None:
                    code = await w.proc.wait()
                    w.failure = f"worker {w.index} exited unexpectedly (code {code})"
                return
            kind, payload = got
            if kind == RECORDS:
                for row in payload:
                    sink(result_from_dict(row))
            elif kind == STATUS:
                for name, n in payload["in_flight"].items():
                    lane = lanes.get(name)
                    if lane is not None:
                        lane.in_flight += n - w.in_flight.get(name, 0)
                w.in_flight = payload["in_flight"]
                w.dispatched = payload["dispatched"]
                if self._loop_lag_sink is not None:
                    for lag in payload["lags_us"]:
                        self._loop_lag_sink(lag)
            elif kind == END:
                w.end = payload
                w.dispatched = payload["dispatched"]
            elif kind == FAILED:
                w.failure = f"worker {w.index}: {payload.get('error')}"

    def _outcome(self) -> RunOutcome:
        ends = [w.end for w in self._workers if w.end is not None]
        failures = [w.failure for w in self._workers if w.failure]
        reason = self.stop_reason
        if reason == "completed":
            reason = next((e["stop_reason"] for e in ends if e["stop_reason"] != "completed"), reason)
        if failures:
            reason = "; ".join(failures) if reason == "completed" else f"{reason}; " + "; ".join(failures)
        self.loop_cpu_ratio = max((e["loop_cpu_ratio"] for e in ends), default=None)
        self.worker_report = [{"worker": w.index, "pid": w.proc.pid, "dispatched": w.dispatched,
                               "loop_cpu_ratio": (w.end or {}).get("loop_cpu_ratio"), "cpu_s": (w.end or {}).get("cpu_s"),
                               "failure": w.failure}
                              for w in self._workers]
        for lane in self.lanes:
            lane.in_flight = 0
        return RunOutcome(
            t0_ns=self.t0_ns,
            end_ns=max((e["end_ns"] for e in ends), default=self.clock.now_ns() - self.t0_ns),
            dispatched=sum(e["dispatched"] for e in ends),
            planned=sum(e["planned"] for e in ends),
            stop_reason=reason,
            cancelled_in_flight=sum(e["cancelled_in_flight"] for e in ends),
            extra={"dispatch_end_ns": max((e["dispatch_end_ns"] for e in ends), default=0), "workers": self.worker_report},
        )

    async def close(self) -> None:
        """Make sure no worker outlives the run (only our own children, by PID)."""
        for w in self._workers:
            w.writer.close()
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        for w in self._workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                await w.proc.wait()
