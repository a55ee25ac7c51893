"""Sub-millisecond wake-ups for the event loop through a Linux timerfd (ctypes).

Event-loop timers (uvloop, and asyncio's epoll selector) have 1 ms resolution and may fire
up to ~1 ms early or late.  A timerfd armed with an absolute CLOCK_MONOTONIC deadline (the
clock behind time.perf_counter_ns on Linux) becomes readable within tens of µs of it, and
epoll wakes the loop as soon as it does: precise pacing without spinning a core.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


class TimerFd:
    """One waiter at a time: `await wait_until(deadline_ns)` on the running loop."""

    __slots__ = ("_fd", "_loop", "_spec", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if _LIBC is None:
            raise OSError("timerfd is not available on this platform")
        fd = _LIBC.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._on_ready)

    @property
    def busy(self) -> bool:
        return self._waiter is not None

    def _on_ready(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_until(self, deadline_ns: int) -> None:
        spec = self._spec
        sec, nsec = divmod(max(deadline_ns, 1), 1_000_000_000)
        spec.it_value.tv_sec = sec
        spec.it_value.tv_nsec = nsec
        if _LIBC.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:  # type: ignore[union-attr]
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


def available() -> bool:
    return _LIBC is not None
