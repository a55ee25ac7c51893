"""Starts built-in simulators in their own processes and stops them by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..scale.procenv import child_env

START_TIMEOUT_S = 30.0


@dataclass(slots=True)
class SimProcess:
    profile: str
    pid: int
    port: int
    proc: asyncio.subprocess.Process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


async def start_sim(profile: str, dataset: Path | None, seed: int, params: dict[str, float | int] | None = None,
                    faults: dict[str, object] | None = None, extra: list[str] | None = None) -> SimProcess:
    args = [sys.executable, "-m", "loadbench", "sim", "--port", "0", "--profile", profile, "--seed", str(seed),
            "--parent-pid", str(os.getpid()), *(extra or [])]
    if params:
        args += ["--params", orjson.dumps(params).decode()]
    if faults:
        args += ["--faults", orjson.dumps(faults).decode()]
    if dataset is not None:
        args += ["--dataset", str(dataset)]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C in the terminal reaches only the driver, which stops us
        env=child_env(),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        info = orjson.loads(line)
        return SimProcess(profile, proc.pid, int(info["port"]), proc)
    except (TimeoutError, orjson.JSONDecodeError, KeyError) as exc:
        err = b""
        if proc.returncode is None:
            proc.kill()
        if proc.stderr is not None:
            with contextlib.suppress(TimeoutError):  # report what it printed, if anything, in time
                err = await asyncio.wait_for(proc.stderr.read(), 5)
        await proc.wait()
        raise RuntimeError(f"simulator {profile!r} did not start: {exc!r} {err.decode(errors='replace')[-500:]}") from None


async def stop_sim(sim: SimProcess, timeout_s: float = 5.0) -> None:
    proc = sim.proc
    if proc.returncode is not None:
        return
    try:
        os.kill(sim.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout_s)
    except ProcessLookupError:
        return
    except TimeoutError:
        os.kill(sim.pid, signal.SIGKILL)
        await proc.wait()


class SimBackends:
    """The simulator as a run's backend for `sim:` candidates and judges (what the engine is given)."""

    async def start(self, profile: str, dataset: Path | None, seed: int, params: dict[str, float | int] | None = None,
                    faults: dict[str, object] | None = None) -> SimProcess:
        return await start_sim(profile, dataset, seed, params, faults)

    async def stop(self, handle: SimProcess) -> None:
        await stop_sim(handle)


SIM_BACKENDS = SimBackends()
