"""Scale-out on one machine: worker processes send a partition of the schedule each.

The coordinator (the `loadbench run` process) starts the workers, gives them one shared
start time (CLOCK_MONOTONIC is the same in every process), and receives every finished
record over a socket.  It records them itself, so histograms merge exactly and counters
sum, then scores, logs and serves /metrics as for a single process.  Each worker has its
own uvloop, connection pools and pacer; the records are the same as one process's
because partitions keep the whole plan's positions, items and intended times.
"""

from __future__ import annotations

import abc
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..config.errors import ConfigError
from ..pacing.clock import Clock, MonotonicClock
from ..pacing.records import RequestResult, result_from_dict
from ..pacing.runner import Lane, Runner, RunOutcome, Sink
from .procenv import child_env

if TYPE_CHECKING:
    from ..plan.resolve import Resolved


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
        "groups": resolved.variants.base_of if resolved.variants is not None else None,
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


class Partition:
    """One worker's share of a run, whatever carries its frames (a socket, a Ray actor).

    `emit(kind, payload)` receives RECORDS and STATUS frames as the run goes."""

    def __init__(self, spec: dict[str, Any], emit: Callable[[bytes, Any], None]) -> None:
        self.spec = spec
        self.emit = emit
        self.runner: Runner | None = None
        self._lanes: list[Lane] = []
        self._transports: list[Any] = []
        self._pending: list[RequestResult] = []
        self._lags: list[int] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed = False

    async def prepare(self) -> None:
        """Resolve, build the lanes and payloads, open the connections: ready to start."""
        from ..config.dataset import Item
        from ..config.scenario import Scenario
        from ..config.trace import TraceReplay
        from ..drive.lanes import build_lanes, prewarm_lanes
        from ..plan.resolve import Resolved, build_plan

        spec = self.spec
        scenario = Scenario.model_validate(spec["scenario"])
        items = [Item.model_validate(x) for x in spec["items"]]
        secrets = {}
        for c in scenario.candidates:  # keys travel by environment only, never with the spec
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
        self.clock = MonotonicClock()
        self._lanes, self._transports = build_lanes(resolved, spec["base_urls"], self.clock)
        await prewarm_lanes(resolved, self._transports)
        plan = build_plan(scenario, resolved.items, resolved.trace, spec.get("groups")).partition(spec["index"], spec["count"])
        self.runner = Runner(plan, self._lanes, self._sink, self.clock, on_saturation=scenario.load.on_saturation,
                             grace_ns=int(scenario.load.grace_s * 1e9), loop_lag_sink=self._lags.append)

    def stop(self, reason: str) -> None:
        if self.runner is not None:
            self.runner.request_stop(reason)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._closed or self.runner is None:
            return
        status = {"in_flight": {lane.name: lane.in_flight for lane in self._lanes}, "dispatched": self.runner.dispatched,
                  "lags_us": self._lags[:]}
        self._lags.clear()
        if self._pending:
            batch, self._pending = self._pending, []
            self.emit(RECORDS, batch)
        self.emit(STATUS, status)

    def _sink(self, r: RequestResult) -> None:
        self._pending.append(r)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    async def run(self, t0_ns: int) -> dict[str, Any]:
        """Send the partition from the shared start time; returns the END payload."""
        assert self.runner is not None
        loop = asyncio.get_running_loop()

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.25)
                if self._flush_handle is None:
                    self.flush()

        tick = loop.create_task(ticker())
        gc.collect()
        gc.freeze()
        cpu_before = time.thread_time()
        wall_before = self.clock.now_ns()
        try:
            outcome = await self.runner.run(t0_ns)
        finally:
            tick.cancel()
            await asyncio.gather(tick, return_exceptions=True)
            gc.unfreeze()
            await asyncio.gather(*(t.close() for t in self._transports), return_exceptions=True)
        cpu_ratio = (time.thread_time() - cpu_before) / max((self.clock.now_ns() - wall_before) / 1e9, 1e-9)
        self.flush()
        self._closed = True
        return {
            "end_ns": outcome.end_ns, "dispatched": outcome.dispatched, "planned": outcome.planned,
            "stop_reason": outcome.stop_reason, "cancelled_in_flight": outcome.cancelled_in_flight,
            "dispatch_end_ns": outcome.extra.get("dispatch_end_ns", 0), "loop_cpu_ratio": cpu_ratio,
            "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        }


async def _run_partition(spec: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    def emit(kind: bytes, payload: Any) -> None:
        if not writer.is_closing():
            writer.write(frame(kind, payload))

    part = Partition(spec, emit)
    await part.prepare()
    loop = asyncio.get_running_loop()

    async def control() -> None:
        while True:
            got = await read_frame(reader)
            if got is None:  # the coordinator is gone: stop now, nobody would record the rest
                part.stop("the coordinator went away")
                part.stop("the coordinator went away")
                return
            kind, payload = got
            if kind == STOP:
                part.stop(payload.get("reason", "stopped"))

    async def drainer() -> None:
        while True:
            await asyncio.sleep(0.25)
            if writer.transport.get_write_buffer_size() > 8 << 20:
                await writer.drain()

    writer.write(frame(READY, {"pid": os.getpid()}))
    await writer.drain()
    got = await read_frame(reader)
    if got is None or got[0] != GO:
        return 1
    controller = loop.create_task(control())
    drain_task = loop.create_task(drainer())
    try:
        end = await part.run(int(got[1]["t0_ns"]))
    finally:
        controller.cancel()
        drain_task.cancel()
        await asyncio.gather(controller, drain_task, return_exceptions=True)
    writer.write(frame(END, end))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()
    return 0


# -------------------------------------------------------------------- coordinator side

@dataclass(slots=True)
class Member:
    """The coordinator's view of one worker (a process or a Ray actor)."""

    index: int
    pid: int | None = None
    in_flight: dict[str, int] = field(default_factory=dict)
    dispatched: int = 0
    end: dict[str, Any] | None = None
    failure: str | None = None
    handle: Any = None  # transport-specific: (process, reader, writer) or a Ray actor


class PoolBase(abc.ABC):
    """Drop-in for Runner in the engine (run / request_stop / stopping / dispatched): what is
    common to worker processes and Ray actors; subclasses start them and move the frames."""

    def __init__(self, spec: dict[str, Any], count: int, lanes: list[Lane], sink: Sink, clock: Clock, *,
                 grace_ns: int, loop_lag_sink: Any = None) -> None:
        self._spec = spec
        self.count = count
        self.lanes = lanes  # proxies: their in_flight is the sum the workers report
        self.sink = sink
        self.clock = clock
        self.grace_ns = grace_ns
        self._loop_lag_sink = loop_lag_sink
        self.members: list[Member] = []
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
        return sum(m.dispatched for m in self.members)

    def request_stop(self, reason: str = "interrupted") -> None:
        if self._stops == 0:
            self.stop_reason = reason
        self._stops += 1
        for m in self.members:
            self._send_stop(m, reason)

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the workers; return once every one has built its payloads."""

    @abc.abstractmethod
    async def run(self, t0_ns: int | None = None) -> RunOutcome:
        """Start sending at t0_ns and feed every frame to `handle` until all workers ended."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Make sure no worker outlives the run."""

    @abc.abstractmethod
    def _send_stop(self, m: Member, reason: str) -> None:
        """Tell one worker to stop scheduling (a second time: to cancel)."""

    def handle(self, m: Member, kind: bytes, payload: Any) -> None:
        """One frame from a worker: records to the sink, status to the proxies."""
        if kind == RECORDS:
            sink = self.sink
            for row in payload:
                sink(result_from_dict(row))
        elif kind == STATUS:
            for lane in self.lanes:
                n = payload["in_flight"].get(lane.name)
                if n is not None:
                    lane.in_flight += n - m.in_flight.get(lane.name, 0)
            m.in_flight = payload["in_flight"]
            m.dispatched = payload["dispatched"]
            if self._loop_lag_sink is not None:
                for lag in payload["lags_us"]:
                    self._loop_lag_sink(lag)
        elif kind == END:
            m.end = payload
            m.dispatched = payload["dispatched"]
        elif kind == FAILED:
            m.failure = f"worker {m.index}: {payload.get('error')}"

    def outcome(self) -> RunOutcome:
        ends = [m.end for m in self.members if m.end is not None]
        failures = [m.failure for m in self.members if m.failure]
        reason = self.stop_reason
        if reason == "completed":
            reason = next((e["stop_reason"] for e in ends if e["stop_reason"] != "completed"), reason)
        if failures:
            reason = "; ".join(failures) if reason == "completed" else f"{reason}; " + "; ".join(failures)
        self.loop_cpu_ratio = max((e["loop_cpu_ratio"] for e in ends), default=None)
        self.worker_report = [{"worker": m.index, "pid": m.pid, "dispatched": m.dispatched,
                               "loop_cpu_ratio": (m.end or {}).get("loop_cpu_ratio"), "cpu_s": (m.end or {}).get("cpu_s"),
                               "failure": m.failure} for m in self.members]
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


class WorkerPool(PoolBase):
    """Worker processes on this machine, one socket each."""

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
            self.members.append(Member(index, proc.pid, handle=(proc, reader, writer)))
            writer.write(frame(SPEC, {**self._spec, "index": index, "count": self.count}))
        ready = await asyncio.wait_for(asyncio.gather(*(read_frame(m.handle[1]) for m in self.members)), READY_TIMEOUT_S)
        problems = []
        for m, got in zip(self.members, ready):
            if got is None:
                problems.append(f"worker {m.index} exited before it was ready")
            elif got[0] == FAILED:
                problems.append(f"worker {m.index}: {got[1].get('error')}")
        if problems:
            await self.close()
            raise RuntimeError("; ".join(problems))

    def _send_stop(self, m: Member, reason: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            m.handle[2].write(frame(STOP, {"reason": reason}))

    async def run(self, t0_ns: int | None = None) -> RunOutcome:
        self.t0_ns = self.clock.now_ns() if t0_ns is None else t0_ns
        for m in self.members:
            m.handle[2].write(frame(GO, {"t0_ns": self.t0_ns}))
        await asyncio.gather(*(self._pump(m) for m in self.members))
        for m in self.members:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(m.handle[0].wait(), 10)
        return self.outcome()

    async def _pump(self, m: Member) -> None:
        proc, reader, _ = m.handle
        while True:
            got = await read_frame(reader)
            if got is None:
                if m.end is None and m.failure is None:
                    code = await proc.wait()
                    m.failure = f"worker {m.index} exited unexpectedly (code {code})"
                return
            self.handle(m, *got)

    async def close(self) -> None:
        """Make sure no worker outlives the run (only our own children, by PID)."""
        for m in self.members:
            proc, _, writer = m.handle
            writer.close()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for m in self.members:
            proc = m.handle[0]
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
