"""What the service's parts share: its configuration, a running child, API errors, small helpers."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

POLICY_FILE = "policy.json"  # what the child run may reach, checked again by the child


CHILD_LOG = "child.log"  # the child run's stderr


ARTIFACTS = ("summary.json", "report.html", "report.md", "results.jsonl", "histograms.hlog", "run.json", "sweep.json")


FINAL = ("done", "failed", "cancelled", "interrupted")


_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


_OVERRIDE = re.compile(r"^[A-Za-z0-9_.\-]+=.*$", re.DOTALL)


FORBIDDEN_OVERRIDES = ("dataset", "load.trace", "output")  # paths stay confined to the scenarios directory


OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.yaml"


SWEEP_OPTIONS = {"rates": "--rates", "step_duration_s": "--step-duration", "warmup_s": "--warmup", "steps": "--steps",
                 "refine": "--refine", "confirm": "--confirm", "peak_qps": "--peak-qps", "headroom": "--headroom",
                 "max_step_duration_s": "--max-step-duration", "tolerance": "--tolerance", "time_budget_s": "--time-budget",
                 "max_steps": "--max-steps"}


@dataclass(slots=True)
class ServiceConfig:
    data_dir: Path
    scenarios_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    max_concurrent: int = 1
    token_env: str = "LOADBENCH_TOKEN"
    max_body_bytes: int = 1 << 20
    max_scenario_bytes: int = 256 << 10
    schedule_tick_s: float = 15.0
    # hardening (docs/service.md, "Threat model")
    read_token_env: str | None = None  # a token that may read but not submit
    open_metrics: bool = False  # /metrics without a token (for a Prometheus that cannot send one)
    allow_hosts: tuple[str, ...] = ()  # target hosts beyond loopback
    key_grants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scorer_modules: tuple[str, ...] = ()
    host_headers: tuple[str, ...] = ()  # Host header values accepted beyond loopback and the bind address
    max_queue: int = 100
    max_schedules: int = 20
    min_schedule_interval_s: float = 300.0
    max_streams: int = 8
    stream_max_s: float = 3600.0
    max_rate_qps: float = 2_000.0
    max_duration_s: float = 6 * 3600.0
    max_requests: int = 2_000_000
    keep_runs: int = 1000
    keep_days: float = 30.0
    child_memory_mb: int = 4096


@dataclass(slots=True)
class ActiveRun:
    proc: asyncio.subprocess.Process
    out_dir: Path
    metrics_port: int | None = None
    cancel_requested: bool = False
    # results.jsonl lines counted so far, and up to where: progress reads only what is new
    results_lines: int = 0
    results_offset: int = 0
    planned: int | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s


def _tail_lines(path: Path, n: int) -> list[str]:
    """The last n non-empty lines of a log file (read from its end, whatever its size)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return [line[-500:] for line in lines[-n:]]


def _now_iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


SESSION_COOKIE = "loadbench_session"  # a browser's read-only session (set by /login)
