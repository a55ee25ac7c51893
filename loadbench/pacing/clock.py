"""Clocks: the real monotonic nanosecond clock and a virtual-time clock for tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from .timerfd import TimerFd
from .timerfd import available as timerfd_available


class Clock(Protocol):
    """What the runner needs from time: a monotonic reading and ways to wait."""

    def now_ns(self) -> int: ...

    async def sleep_ns(self, duration_ns: int) -> None: ...

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Wait until now_ns() >= deadline_ns, as precisely as the clock can."""


class MonotonicClock:
    """Production clock: `time.perf_counter_ns` for readings (never `loop.time()`,
    which uvloop caches per iteration at 1 ms resolution).

    `sleep_until_ns` is the pacing wait.  On Linux it arms a timerfd, which wakes the loop
    within tens of µs of the deadline; elsewhere (or if another pacer holds the timerfd) it
    sleeps on a loop timer to within `spin_ns` and yields cooperatively for the rest.
    """

    __slots__ = ("_timers", "spin_ns")

    def __init__(self, spin_ns: int = 1_000_000) -> None:
        self.spin_ns = spin_ns
        self._timers: dict[int, TimerFd | None] = {}

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    async def sleep_ns(self, duration_ns: int) -> None:
        await asyncio.sleep(max(duration_ns, 0) / 1e9)

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        timer = self._timer()
        if timer is not None and not timer.busy:
            if deadline_ns > time.perf_counter_ns():
                await timer.wait_until(deadline_ns)
            else:
                await asyncio.sleep(0)
            return
        coarse = deadline_ns - time.perf_counter_ns() - self.spin_ns
        if coarse > 200_000:
            await asyncio.sleep(coarse / 1e9)
        while time.perf_counter_ns() < deadline_ns:
            await asyncio.sleep(0)

    def _timer(self) -> TimerFd | None:
        loop = asyncio.get_running_loop()
        key = id(loop)
        if key not in self._timers:
            timer = None
            if timerfd_available():
                try:
                    timer = TimerFd(loop)
                except OSError:
                    timer = None
            self._timers[key] = timer
        return self._timers[key]

    def close(self) -> None:
        for timer in self._timers.values():
            if timer is not None:
                timer.close()
        self._timers.clear()


class FakeClock:
    """Virtual time that jumps forward when every task is blocked on it.

    Like trio's autojump MockClock: a helper task watches the event loop; when nothing
    else is runnable it advances time to the earliest sleeper and wakes it.  Runs on the
    default asyncio loop (it inspects the loop's ready queue) and is meant for tests of
    code that waits only on this clock.
    """

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self._now_ns = start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._jumper: asyncio.Task[None] | None = None

    def now_ns(self) -> int:
        return self._now_ns

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        await self.sleep_ns(deadline_ns - self._now_ns)

    def advance_ns(self, duration_ns: int) -> None:
        self._now_ns += duration_ns
        self._wake_due()

    async def sleep_ns(self, duration_ns: int) -> None:
        self._ensure_jumper()
        if duration_ns <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now_ns + duration_ns, next(self._counter), fut))
        await fut

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now_ns:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def _ensure_jumper(self) -> None:
        if self._jumper is None or self._jumper.done():
            self._jumper = asyncio.get_running_loop().create_task(self._autojump())

    async def _autojump(self) -> None:
        loop = asyncio.get_running_loop()
        idle_rounds = 0
        while True:
            await asyncio.sleep(0)
            live = [s for s in self._sleepers if not s[2].done()]
            if not live:
                # Nobody waits on this clock: exit, so that a jumper of another clock on the
                # same loop can see the loop idle (the next sleep starts a new jumper).
                return
            # Only this task was runnable: everything else waits on the clock (or is done).
            if len(loop._ready) == 0:  # type: ignore[attr-defined]
                idle_rounds += 1
                if idle_rounds < 2:
                    continue
                self._now_ns = max(self._now_ns, min(s[0] for s in live))
                self._wake_due()
            idle_rounds = 0
