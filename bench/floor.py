"""The machine's own wake-up floor: timerfd wake-ups at a fixed rate with no requests at all.

B4's schedule lag can be no better than how late this machine wakes a sleeping process. This
paces an empty uvloop loop exactly like the sender (absolute timerfd deadlines) on the CPU it is
pinned to, and reports the lateness percentiles next to the CPU time the hypervisor took from
that CPU meanwhile (steal, from /proc/stat). Prints one JSON line.
Usage: taskset -c 0 python bench/floor.py [--rate 1000] [--duration 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadbench.pacing.timerfd import TimerFd

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_steal_s(cpus: set[int]) -> float:
    """Steal seconds summed over `cpus` (the 8th value of each cpuN line)."""
    total = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            total += int(line.split()[8]) * TICK_S
    return total


async def wake_lateness(rate: float, duration_s: float) -> np.ndarray:
    timer = TimerFd(asyncio.get_running_loop())
    period_ns = int(1e9 / rate)
    n = int(rate * duration_s)
    late = np.empty(n, dtype=np.int64)
    start = time.perf_counter_ns() + 50_000_000
    try:
        for i in range(n):
            due = start + i * period_ns
            now = time.perf_counter_ns()
            if due > now:
                await timer.wait_until(due)
                now = time.perf_counter_ns()
            late[i] = now - due
    finally:
        timer.close()
    return late


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=15.0)
    args = ap.parse_args()
    import uvloop

    cpus = os.sched_getaffinity(0)
    steal_before, wall_before = cpu_steal_s(cpus), time.monotonic()
    late = uvloop.run(wake_lateness(args.rate, args.duration))
    steal = cpu_steal_s(cpus) - steal_before
    wall = time.monotonic() - wall_before
    ms = late / 1e6
    print(json.dumps({"rate": args.rate, "wakeups": int(late.size), "cpus": sorted(cpus),
                      "late_p50_ms": float(np.percentile(ms, 50)), "late_p99_ms": float(np.percentile(ms, 99)),
                      "late_p999_ms": float(np.percentile(ms, 99.9)), "late_max_ms": float(ms.max()),
                      "over_1ms_share": float((ms > 1).mean()), "steal_share": steal / (wall * len(cpus))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
