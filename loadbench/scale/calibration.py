"""This machine's per-worker ceiling: stored by `loadbench calibrate`, used to pick --workers."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import orjson

# Used until `loadbench calibrate` has measured this machine: a deliberately low per-worker
# rate (one modest core, streaming responses), so that "auto" errs towards more workers.
DEFAULT_WORKER_RPS = 1500.0
HEADROOM = 0.5  # plan each worker at half its measured ceiling: pacing stays precise below it
# Bumped when the sending path's cost changes a lot (2: the lean HTTP/1.1 client): an older
# measurement no longer describes this client and is ignored until `loadbench calibrate` reruns.
CALIBRATION_FORMAT = 2


def calibration_path() -> Path:
    base = os.environ.get("LOADBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "loadbench")
    return Path(base) / "calibration.json"


def load_calibration() -> dict[str, Any] | None:
    try:
        data = orjson.loads(calibration_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    ok = isinstance(data, dict) and data.get("worker_rps") and data.get("format") == CALIBRATION_FORMAT
    return data if ok else None


def save_calibration(result: dict[str, Any]) -> Path:
    path = calibration_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({**result, "format": CALIBRATION_FORMAT, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                 option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)
    return path


def worker_capacity_rps(calibration: dict[str, Any] | None, stream: bool) -> float:
    if not calibration:
        return DEFAULT_WORKER_RPS
    key = "worker_stream_rps" if stream else "worker_rps"
    return float(calibration.get(key) or calibration["worker_rps"])


def choose_workers(requested: str | int, *, offered_rps: float | None, capacity_rps: float, cores: int) -> int:
    """`auto`: enough workers to keep each under HEADROOM of its ceiling, at most one per core
    (one when the offered rate is unknown, as in closed loop).  A number is taken as given."""
    if requested != "auto":
        return int(requested)
    if not offered_rps:
        return 1
    return max(1, min(cores, math.ceil(offered_rps / (capacity_rps * HEADROOM))))


def capacity_warning(offered_rps: float | None, workers: int, capacity_rps: float, calibrated: bool) -> str | None:
    """A warning when the plan asks more than the workers can send (before any traffic)."""
    if not offered_rps or offered_rps <= workers * capacity_rps:
        return None
    basis = "calibrated" if calibrated else "assumed (run `loadbench calibrate` to measure this machine)"
    return (f"the scenario offers {offered_rps:,.0f} requests/s over all candidates, more than {workers} worker(s) can "
            f"send at the {basis} ceiling of {capacity_rps:,.0f}/s each; expect schedule lag and an invalid run "
            f"(use --workers {math.ceil(offered_rps / (capacity_rps * HEADROOM))}, or lower the rate)")
