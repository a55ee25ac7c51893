"""Process-wide settings a run wants (uvloop, a short GIL switch interval), applied in one place and restored."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator

# Scoring runs in a thread: a short switch interval bounds how long it can hold up the
# sending loop (the default 5 ms would show as schedule lag).
SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def run_settings() -> Iterator[None]:
    """uvloop as the event loop policy and the short switch interval, for the duration of a run."""
    old_interval = sys.getswitchinterval()
    old_policy = asyncio.get_event_loop_policy()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; run on asyncio's loop without it
        uvloop = None
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(old_interval)
        asyncio.set_event_loop_policy(old_policy)
