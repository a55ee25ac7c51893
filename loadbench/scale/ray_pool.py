"""Scale-out beyond one machine: the same partitions as --workers, run as Ray actors.

Optional (`pip install 'loadbench[ray]'`).  Each actor runs one `Partition` on its own event
loop and connection pools; the coordinator drains their frames every 20 ms and records them
exactly as it does for local workers.  The start time travels as wall-clock time, since
CLOCK_MONOTONIC is not shared between machines; every record's times are offsets from it,
taken on the actor's own monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import orjson

from ..pacing.runner import RunOutcome
from .workers import FAILED, Member, Partition, PoolBase

DRAIN_S = 0.02
RAY_READY_TIMEOUT_S = 300.0


class PartitionActor:
    """A Ray actor (async: `run` and `drain` interleave on its event loop)."""

    def __init__(self) -> None:
        self._frames: list[tuple[bytes, bytes]] = []
        self._part: Partition | None = None

    async def prepare(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            self._part = Partition(spec, lambda kind, payload: self._frames.append((kind, orjson.dumps(payload))))
            await self._part.prepare()
        except Exception as exc:  # reported by the coordinator, naming the actor
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"pid": os.getpid(), "node": os.uname().nodename}

    async def run(self, t0_wall_ns: int) -> dict[str, Any]:
        assert self._part is not None
        t0_ns = time.perf_counter_ns() + (t0_wall_ns - time.time_ns())
        return await self._part.run(t0_ns)

    async def drain(self) -> list[tuple[bytes, bytes]]:
        frames, self._frames = self._frames, []
        return frames

    async def stop(self, reason: str) -> None:
        if self._part is not None:
            self._part.stop(reason)


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast with a clear message: ray.init retries an unreachable address for minutes and
    then exits the process."""
    import socket
    from urllib.parse import urlsplit

    hostport = address.split("://", 1)[1] if "://" in address else address
    parts = urlsplit("//" + hostport)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"expected host:port or ray://host:port, got {address!r}")
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"{parts.hostname}:{parts.port} does not answer ({exc.strerror or exc})") from None


def connect(address: str) -> bool:
    """Join the Ray cluster (`auto`: RAY_ADDRESS or a cluster running here, else a new local
    one).  Returns True when this call started Ray (so the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    root = str(Path(__file__).resolve().parents[2])
    # The actors import this very copy of loadbench (on a remote cluster, install loadbench
    # in the image, or ship it with py_modules; see docs/scale-out.md).
    runtime_env = {"env_vars": {"PYTHONPATH": root}}
    kwargs: dict[str, Any] = {"runtime_env": runtime_env, "include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    target = os.environ.get("RAY_ADDRESS") if address == "auto" else address
    if target and target != "auto":
        check_reachable(target)
    try:
        if target:
            ray.init(address=target, **kwargs)
        else:
            ray.init(**kwargs)
    except SystemExit as exc:  # ray.init exits when it gives up on a cluster
        raise ConnectionError(f"Ray gave up joining the cluster (exit {exc.code})") from None
    return True


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class RayPool(PoolBase):
    """Partitions on Ray actors, one CPU each."""

    async def start(self) -> None:
        import ray

        actor_cls = ray.remote(num_cpus=1)(PartitionActor)
        secrets = {name: os.environ[name] for name in self._secret_envs() if name in os.environ}
        options = {"runtime_env": {"env_vars": secrets}} if secrets else {}
        for index in range(self.count):
            actor = actor_cls.options(**options).remote() if options else actor_cls.remote()
            self.members.append(Member(index, handle=actor))
        ready = await asyncio.wait_for(
            asyncio.gather(*(m.handle.prepare.remote({**self._spec, "index": m.index, "count": self.count}) for m in self.members)),
            RAY_READY_TIMEOUT_S)
        problems = []
        for m, info in zip(self.members, ready):
            if "error" in info:
                problems.append(f"ray actor {m.index}: {info['error']}")
            else:
                m.pid = info["pid"]
        if problems:
            await self.close()
            raise RuntimeError("; ".join(problems))

    def _secret_envs(self) -> list[str]:
        # API keys go to the actors through the environment Ray gives them, never in the spec.
        return [c["api_key_env"] for c in self._spec["scenario"]["candidates"] if c.get("api_key_env")]

    def _send_stop(self, m: Member, reason: str) -> None:
        m.handle.stop.remote(reason)

    async def run(self, t0_ns: int | None = None) -> RunOutcome:
        self.t0_ns = self.clock.now_ns() if t0_ns is None else t0_ns
        t0_wall_ns = time.time_ns() + (self.t0_ns - self.clock.now_ns())
        runs = {m.index: asyncio.ensure_future(m.handle.run.remote(t0_wall_ns)) for m in self.members}
        while True:
            await self._drain_all()
            if all(f.done() for f in runs.values()):
                break
            await asyncio.sleep(DRAIN_S)
        await self._drain_all()
        for m in self.members:
            try:
                self.handle(m, b"E", runs[m.index].result())
            except Exception as exc:  # an actor that died: what it sent is kept, the rest is named
                self.handle(m, FAILED, {"error": f"{type(exc).__name__}: {exc}"})
        return self.outcome()

    async def _drain_all(self) -> None:
        batches = await asyncio.gather(*(m.handle.drain.remote() for m in self.members), return_exceptions=True)
        for m, frames in zip(self.members, batches):
            if isinstance(frames, BaseException):
                continue
            for kind, payload in frames:
                self.handle(m, kind, orjson.loads(payload))

    async def close(self) -> None:
        import ray

        for m in self.members:
            with contextlib.suppress(Exception):
                ray.kill(m.handle)


__all__ = ["PartitionActor", "RayPool", "cluster_cpus", "connect"]
