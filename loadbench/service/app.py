"""`loadbench serve`: a long-running service with an HTTP API, a persistent queue, schedules,
run history, baselines and regression checks.  Each run is a `loadbench run` child process
(the same engine as the CLI), so a crash of one run never takes the service down."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import os
import re
import secrets as secrets_mod
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ..config.errors import ConfigError
from ..config.files import read_json, write_json_atomic
from .history import ACTIVE, History, compact_summary
from .policy import Policy, check_scenario, child_environment, key_variables, scan_yaml

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


class Service:
    def __init__(self, cfg: ServiceConfig, token: str, read_token: str | None = None) -> None:
        self.cfg = cfg
        self._token = token
        self._read_token = read_token
        # a browser session proves it was given a token without holding the token itself
        self._session_cookie = hmac.new(token.encode(), b"loadbench-read-session", "sha256").hexdigest()
        self.policy = Policy(confine_dir=str(cfg.scenarios_dir.resolve()), allow_hosts=cfg.allow_hosts,
                             key_grants=dict(cfg.key_grants), scorer_modules=cfg.scorer_modules,
                             max_rate_qps=cfg.max_rate_qps, max_duration_s=cfg.max_duration_s, max_requests=cfg.max_requests)
        self.protected_env = tuple(e for e in (cfg.token_env, cfg.read_token_env) if e)
        self.streams = 0
        self.scenarios_dir = cfg.scenarios_dir.resolve()
        self.runs_dir = cfg.data_dir / "runs"
        self.submitted_dir = cfg.data_dir / "submitted"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.submitted_dir.mkdir(parents=True, exist_ok=True)
        self.history = History(cfg.data_dir / "loadbench.db")
        self.active: dict[str, ActiveRun] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self.regressions: dict[tuple[str, str, str], int] = {}

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), trust_env=False)
        self.recover()
        self.prune()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._dispatch_forever()), loop.create_task(self._schedule_forever())]

    async def stop(self) -> None:
        """Stop scheduling; ask running children to stop (they keep what they collected)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for active in list(self.active.values()):
            with contextlib.suppress(ProcessLookupError):
                active.proc.send_signal(signal.SIGINT)
        for run_id, active in list(self.active.items()):
            try:
                await asyncio.wait_for(active.proc.wait(), 30)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    active.proc.kill()
                await active.proc.wait()
            self._finish_interrupted(run_id, "the service stopped while the run was going")
        if self._session is not None:
            await self._session.close()
        self.history.close()

    def prune(self) -> list[str]:
        """Retention: finished runs beyond --keep-runs or older than --keep-days go, with their
        directories and submitted files (a baseline's run stays)."""
        import shutil

        expired = self.history.expired_runs(self.cfg.keep_runs, time.time() - self.cfg.keep_days * 86_400)
        for run_id in expired:
            if _ID.match(run_id):
                shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)
                (self.submitted_dir / f"{run_id}.yaml").unlink(missing_ok=True)
        if expired:
            self.history.delete_runs(expired)
        return expired

    def recover(self) -> None:
        """After a restart: runs that were running are interrupted (their data is kept and the
        summary rebuilt from the results log); queued runs stay queued."""
        for row in self.history.list_runs(status="running", limit=10_000):
            self._finish_interrupted(row["id"], "the service restarted while the run was going")

    def _finish_interrupted(self, run_id: str, why: str) -> None:
        from ..stats.rebuild import rebuild_summary
        from ..views.pages import write_run_reports

        row = self.history.get_run(run_id)
        if row is None or row["status"] in FINAL:
            return
        run_dir = self._locate_run_dir(run_id)
        summary = None
        if run_dir is not None and (run_dir / "results.jsonl").exists():
            try:
                if (run_dir / "summary.json").exists():
                    summary = read_json(run_dir / "summary.json")
                else:
                    rebuilt = rebuild_summary(run_dir)
                    summary = rebuilt.summary
                    write_json_atomic(run_dir / "summary.json", summary)
                    write_run_reports(run_dir, summary)
            except (ConfigError, OSError, ValueError):
                summary = None
        self.history.update_run(run_id, status="interrupted", finished_at=time.time(), error=why,
                                run_dir=str(run_dir) if run_dir else None,
                                summary=compact_summary(summary) if summary else None)

    def _locate_run_dir(self, run_id: str) -> Path | None:
        out = self.runs_dir / run_id
        if not out.is_dir():
            return None
        dirs = [p for p in out.iterdir() if p.is_dir()]
        return dirs[0] if len(dirs) == 1 else None

    # ----------------------------------------------------------------- submissions

    def _bearer(self, request: web.Request) -> bytes | None:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        # header bytes that are not UTF-8 arrive as surrogates: compare them as bytes, never fail on them
        return given.strip().encode("utf-8", "surrogateescape")

    def _check_auth(self, request: web.Request) -> None:
        given = self._bearer(request)
        if given is None or not hmac.compare_digest(given, self._token.encode()):
            raise ApiError(401, "a bearer token is required for this call (Authorization: Bearer ...)")

    def _check_read(self, request: web.Request) -> None:
        """Reads need the token, the read-only token, or the session cookie /login sets."""
        given = self._bearer(request)
        if given is not None and (hmac.compare_digest(given, self._token.encode()) or (
                self._read_token is not None and hmac.compare_digest(given, self._read_token.encode()))):
            return
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode("utf-8", "surrogateescape"), self._session_cookie.encode()):
            return
        raise ApiError(401, "a bearer token is required to read this (Authorization: Bearer ..., or log in at /login)")

    def login(self, token: str) -> str:
        """The session cookie for a browser that presented a valid (read) token."""
        given = token.strip().encode("utf-8", "surrogateescape")
        if hmac.compare_digest(given, self._token.encode()) or (
                self._read_token is not None and hmac.compare_digest(given, self._read_token.encode())):
            return self._session_cookie
        raise ApiError(401, "that token is not valid")

    def _scenario_file(self, name: str) -> Path:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ApiError(400, "scenario must be the name of a file in the scenarios directory", "scenario")
        path = (self.scenarios_dir / name).resolve()
        if not path.is_relative_to(self.scenarios_dir):
            raise ApiError(403, f"scenario {name!r} is outside the scenarios directory", "scenario")
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            raise ApiError(404, f"no scenario {name!r} in the scenarios directory", "scenario")
        return path

    def _confined(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"{what} must be a path", what)
        path = (self.scenarios_dir / value).resolve()
        if not path.is_relative_to(self.scenarios_dir):
            raise ApiError(403, f"{what} {value!r} is outside the scenarios directory", what)
        return str(path)

    def validate_submission(self, body: Any) -> tuple[str, str, dict[str, Any]]:
        """(kind, scenario label, normalized request) or ApiError."""
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        unknown = set(body) - {"scenario", "scenario_yaml", "overrides", "kind", "label", "sweep"}
        if unknown:
            raise ApiError(400, f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
        kind = body.get("kind", "run")
        if kind not in ("run", "sweep"):
            raise ApiError(400, "kind must be run or sweep", "kind")
        overrides = body.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) and _OVERRIDE.match(o) for o in overrides):
            raise ApiError(400, "overrides must be a list of 'dotted.path=value' strings", "overrides")
        for o in overrides:
            if o.split("=", 1)[0].startswith(FORBIDDEN_OVERRIDES):
                raise ApiError(403, f"override {o.split('=', 1)[0]!r} is not allowed through the service (paths stay confined)",
                               "overrides")
        if (body.get("scenario") is None) == (body.get("scenario_yaml") is None):
            raise ApiError(400, "give scenario (a file name in the scenarios directory) or scenario_yaml, not both", "scenario")
        request: dict[str, Any] = {"kind": kind, "overrides": overrides}
        sweep = body.get("sweep")
        if sweep is not None:
            if kind != "sweep" or not isinstance(sweep, dict) or set(sweep) - set(SWEEP_OPTIONS):
                raise ApiError(400, f"sweep options go with kind sweep; known: {', '.join(SWEEP_OPTIONS)}", "sweep")
            for key, value in sweep.items():
                ok = isinstance(value, str) and re.fullmatch(r"[0-9.,]+", value) if key == "rates" else (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 86_400)
                if not ok:
                    raise ApiError(400, f"sweep.{key} has a bad value {value!r}", "sweep")
            request["sweep"] = sweep
        if body.get("scenario") is not None:
            self._scenario_file(body["scenario"])
            request["scenario"] = body["scenario"]
            label = str(body["scenario"])
        else:
            text = body["scenario_yaml"]
            if not isinstance(text, str):
                raise ApiError(400, "scenario_yaml must be a string", "scenario_yaml")
            if len(text.encode("utf-8", "surrogateescape")) > self.cfg.max_scenario_bytes:
                raise ApiError(413, f"scenario_yaml is larger than {self.cfg.max_scenario_bytes} bytes", "scenario_yaml")
            try:
                scan_yaml(text)  # aliases and deep nesting are refused before anything expands them
                data = yaml.safe_load(text)
            except (ValueError, yaml.YAMLError, RecursionError) as exc:
                raise ApiError(400, f"scenario_yaml: {exc}", "scenario_yaml") from None
            if not isinstance(data, dict):
                raise ApiError(400, "scenario_yaml must be a mapping", "scenario_yaml")
            paths = []
            if data.get("dataset") is not None:
                paths.append(f"dataset={self._confined(data['dataset'], 'dataset')}")
            trace = (data.get("load") or {}).get("trace") if isinstance(data.get("load"), dict) else None
            if isinstance(trace, dict) and trace.get("path") is not None:
                paths.append(f"load.trace.path={self._confined(trace['path'], 'load.trace.path')}")
            request["scenario_yaml"] = text
            request["confined_paths"] = paths
            label = str(data.get("name") or "(inline)")
        if body.get("label") is not None:
            request["label"] = str(body["label"])[:200]
        self._check_final(request)
        return kind, label, request

    def _check_final(self, request: dict[str, Any]) -> None:
        """Load the scenario as the child will (every override applied, the same code as the
        CLI) and hold it against the policy: hosts, key grants, files, scorer code, sizes."""
        import tempfile

        from ..config.scenario import load_scenario

        overrides = [*request.get("confined_paths", ()), *request.get("overrides", ())]
        if request["kind"] == "sweep":
            step = (request.get("sweep") or {}).get("step_duration_s", 20.0)
            overrides += ["load.requests=null", f"load.duration_s={step or 20.0}"]
        with tempfile.TemporaryDirectory(dir=self.submitted_dir) as tmp:
            if "scenario" in request:
                path = self._scenario_file(request["scenario"])
            else:
                path = Path(tmp) / "scenario.yaml"
                path.write_text(request["scenario_yaml"], encoding="utf-8", errors="surrogateescape")
            try:
                scenario, scenario_dir = load_scenario(path, overrides)
            except ConfigError as err:
                # the same words as the CLI, with the file named as the submitter knows it
                shown = request.get("scenario", "scenario_yaml")
                text = "; ".join(f"{p.field + ': ' if p.field else ''}{p.message}" + (f" (line {p.line})" if p.line else "")
                                 for p in err.problems)
                raise ApiError(400, f"{shown}: {text}", "scenario") from None
            except RecursionError:
                raise ApiError(400, "the scenario is nested too deeply", "scenario") from None
        if "scenario" not in request:
            scenario_dir = self.submitted_dir  # where the child reads it from: only absolute, confined paths pass
        problems = check_scenario(scenario, scenario_dir, self.policy, self.protected_env)
        sweep = request.get("sweep") or {}
        for key in ("step_duration_s", "max_step_duration_s", "time_budget_s"):
            if key in sweep and sweep[key] > self.cfg.max_duration_s:
                problems.append(f"sweep.{key}: {sweep[key]:g} s is above this service's limit of {self.cfg.max_duration_s:g} s")
        if problems:
            raise ApiError(403, "not allowed by this service's policy: " + "; ".join(problems), "scenario")
        request["key_envs"] = key_variables(scenario)

    def submit(self, body: Any, schedule_id: str | None = None) -> dict[str, Any]:
        kind, label, request = self.validate_submission(body)
        queued = len(self.history.list_runs(status="queued", limit=self.cfg.max_queue + 1))
        if queued >= self.cfg.max_queue:
            raise ApiError(429, f"the queue is full ({self.cfg.max_queue} runs waiting); try again later", retry_after_s=60)
        run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets_mod.token_hex(3)
        if "scenario_yaml" in request:
            (self.submitted_dir / f"{run_id}.yaml").write_text(request["scenario_yaml"])
        self.history.add_run(run_id, kind, label, request, schedule_id)
        self._wake.set()
        return self.describe(self.history.get_run(run_id) or {})

    def cancel(self, run_id: str) -> dict[str, Any]:
        row = self.history.get_run(run_id)
        if row is None:
            raise ApiError(404, f"no run {run_id!r}")
        if row["status"] == "queued":
            self.history.update_run(run_id, status="cancelled", finished_at=time.time(), error="cancelled before it started")
        elif row["status"] == "running" and run_id in self.active:
            active = self.active[run_id]
            active.cancel_requested = True
            with contextlib.suppress(ProcessLookupError):
                active.proc.send_signal(signal.SIGINT)  # stops scheduling; what was collected is kept
        else:
            raise ApiError(409, f"run {run_id} is {row['status']}; only queued or running runs can be cancelled")
        return self.describe(self.history.get_run(run_id) or row)

    # ----------------------------------------------------------------- execution

    async def _dispatch_forever(self) -> None:
        while True:
            while len(self.active) < self.cfg.max_concurrent:
                row = self.history.next_queued()
                if row is None:
                    break
                await self._launch(row)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    def _command(self, row: dict[str, Any], out_dir: Path) -> list[str]:
        request = row["request"]
        if "scenario" in request:
            scenario_path = str(self._scenario_file(request["scenario"]))
        else:
            scenario_path = str(self.submitted_dir / f"{row['id']}.yaml")
        cmd = [sys.executable, "-m", "loadbench", request["kind"], scenario_path, "--out", str(out_dir),
               "--stop-with-parent", str(os.getpid()), "--service-policy", str(out_dir / POLICY_FILE)]
        if request["kind"] == "run":
            cmd += ["--metrics-port", "0"]
        for key, value in (request.get("sweep") or {}).items():
            cmd += [SWEEP_OPTIONS[key], str(value)]
        if request["kind"] == "run":
            cmd += ["--fail-on", "none"]
        for override in (*request.get("confined_paths", ()), *request.get("overrides", ())):
            cmd += ["--set", override]
        return cmd

    async def _launch(self, row: dict[str, Any]) -> None:
        run_id = row["id"]
        out_dir = self.runs_dir / run_id
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            cmd = self._command(row, out_dir)
        except ApiError as exc:  # the scenario went away while queued
            self.history.update_run(run_id, status="failed", finished_at=time.time(), error=exc.message)
            return
        write_json_atomic(out_dir / POLICY_FILE, self.policy.to_json())
        env = child_environment(row["request"].get("key_envs") or [], self.policy)
        limit = self.cfg.child_memory_mb << 20

        def limit_memory() -> None:  # runs in the child before exec: a runaway run cannot take the host's memory
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        # The child's stderr goes to a file in its run directory (never a pipe to us): a run that
        # outlives the service still writes everything, its summary included.
        with open(out_dir / CHILD_LOG, "ab") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=log, env=env, start_new_session=True,
                                                        preexec_fn=limit_memory if limit > 0 else None)
        self.active[run_id] = ActiveRun(proc, out_dir)
        self.history.update_run(run_id, status="running", started_at=time.time())
        asyncio.get_running_loop().create_task(self._watch(run_id))

    async def _watch(self, run_id: str) -> None:
        active = self.active[run_id]
        code = await active.proc.wait()
        del self.active[run_id]
        run_dir = self._locate_run_dir(run_id)
        summary = read_json(run_dir / "summary.json") if run_dir and (run_dir / "summary.json").exists() else None
        row_kind = (self.history.get_run(run_id) or {}).get("kind")
        if active.cancel_requested:
            status = "cancelled"
        elif (code in (0, 1, 3, 4) and summary is not None) or (row_kind == "sweep" and code == 0 and run_dir is not None and (run_dir / "sweep.json").exists()):
            status = "done"
        elif code == 130:
            status = "interrupted"
        else:
            status = "failed"
        error = None if status == "done" else ("\n".join(_tail_lines(active.out_dir / CHILD_LOG, 5)) or f"exit code {code}")
        row = self.history.get_run(run_id) or {}
        regression = None
        if summary is not None and row.get("kind") == "run" and status == "done":
            regression = self._check_baselines(row["scenario"], run_dir, summary)  # type: ignore[arg-type]
        self.history.update_run(run_id, status=status, finished_at=time.time(), exit_code=code, error=error,
                                run_dir=str(run_dir) if run_dir else None,
                                summary=compact_summary(summary) if summary and "candidates" in summary else None,
                                regression=regression)
        self.prune()
        self._wake.set()

    def _check_baselines(self, scenario: str, run_dir: Path, summary: dict[str, Any]) -> dict[str, Any] | None:
        from ..pacing.results_log import iter_results
        from ..stats.regression import compare_runs

        baselines = {b["candidate"]: b["run_id"] for b in self.history.baselines(scenario)}
        if not baselines:
            return None
        result: dict[str, Any] = {"candidates": {}, "regressed": []}
        new_records = [r for _, r, _ in iter_results(run_dir / "results.jsonl") if r is not None]
        for candidate, base_id in baselines.items():
            base_row = self.history.get_run(base_id)
            if candidate not in summary.get("candidates", {}) or not base_row or not base_row.get("run_dir"):
                continue
            base_dir = Path(base_row["run_dir"])
            base_summary = read_json(base_dir / "summary.json")
            base_records = [r for _, r, _ in iter_results(base_dir / "results.jsonl") if r is not None]
            cmp = compare_runs(base_summary, summary, base_records, new_records, candidates={candidate: candidate})
            if candidate in cmp["candidates"]:
                c = cmp["candidates"][candidate]
                result["candidates"][candidate] = {"baseline_run": base_id, **c}
                for metric in c["checks"]:
                    self.regressions[(scenario, candidate, metric)] = int(metric in c["regressed"])
                if c["regressed"]:
                    result["regressed"].append(candidate)
        summary["regression"] = result
        write_json_atomic(run_dir / "summary.json", summary)
        return result

    async def _schedule_forever(self) -> None:
        from croniter import croniter

        while True:
            now = time.time()
            for s in self.history.list_schedules():
                if not s["enabled"]:
                    continue
                base = s["last_fired_at"] or s["created_at"]
                due = croniter(s["cron"], datetime.fromtimestamp(base, UTC)).get_next(float)
                if due <= now:
                    with contextlib.suppress(ApiError):
                        self.submit(s["request"], schedule_id=s["id"])
                    self.history.schedule_fired(s["id"], now)
            await asyncio.sleep(self.cfg.schedule_tick_s)

    def add_schedule(self, body: Any) -> dict[str, Any]:
        from croniter import croniter

        if not isinstance(body, dict) or "cron" not in body or "run" not in body:
            raise ApiError(400, "give cron (a five-field cron expression, UTC) and run (a run submission)")
        cron = body["cron"]
        if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ApiError(400, f"not a five-field cron expression: {cron!r}", "cron")
        if len(self.history.list_schedules()) >= self.cfg.max_schedules:
            raise ApiError(429, f"this service keeps at most {self.cfg.max_schedules} schedules; delete one first",
                           retry_after_s=3600)
        it = croniter(cron, datetime.now(UTC))
        first, second = it.get_next(float), it.get_next(float)
        if second - first < self.cfg.min_schedule_interval_s:
            raise ApiError(400, f"{cron!r} fires every {second - first:g} s; this service allows at most one run every "
                                f"{self.cfg.min_schedule_interval_s:g} s per schedule", "cron")
        _, label, _ = self.validate_submission(body["run"])
        schedule_id = "sch-" + secrets_mod.token_hex(4)
        self.history.add_schedule(schedule_id, label, cron, body["run"])
        return next(s for s in self.history.list_schedules() if s["id"] == schedule_id)

    # ----------------------------------------------------------------- views

    def describe(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: row.get(k) for k in ("id", "kind", "scenario", "status", "exit_code", "error", "schedule_id")}
        out["label"] = (row.get("request") or {}).get("label")
        out["overrides"] = (row.get("request") or {}).get("overrides", [])
        for key in ("created_at", "started_at", "finished_at"):
            out[key] = _now_iso(row.get(key))
        out["summary"] = row.get("summary")
        out["regression"] = row.get("regression")
        active = self.active.get(row.get("id", ""))
        if active is not None:
            out["progress"] = self.progress(row["id"])
        run_dir = row.get("run_dir") or (str(self._locate_run_dir(row["id"])) if row.get("id") and self._locate_run_dir(row["id"]) else None)
        out["artifacts"] = [name for name in ARTIFACTS if run_dir and (Path(run_dir) / name).exists()]
        return out

    def progress(self, run_id: str) -> dict[str, Any]:
        """Lines in the run's results log (counted incrementally) and its planned requests."""
        active = self.active.get(run_id)
        if active is None:
            return {"results_lines": 0, "planned_requests_per_candidate": None, "last_line": None}
        run_dir = self._locate_run_dir(run_id)
        if run_dir is not None and (run_dir / "results.jsonl").exists():
            with open(run_dir / "results.jsonl", "rb") as f:
                f.seek(active.results_offset)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    active.results_lines += chunk.count(b"\n")
                    active.results_offset += len(chunk)
        if active.planned is None and run_dir is not None and (run_dir / "run.json").exists():
            with contextlib.suppress(OSError, ValueError):
                active.planned = read_json(run_dir / "run.json").get("planned_requests")
        last = _tail_lines(active.out_dir / CHILD_LOG, 1)
        return {"results_lines": active.results_lines, "planned_requests_per_candidate": active.planned,
                "last_line": last[0] if last else None}

    def _metrics_port(self, run_id: str, active: ActiveRun) -> int | None:
        """The child's /metrics port, from its run.json (the documented child protocol: the run
        rewrites run.json with `metrics_port` once its endpoint listens)."""
        if active.metrics_port is None:
            run_dir = self._locate_run_dir(run_id)
            if run_dir is not None and (run_dir / "run.json").exists():
                with contextlib.suppress(OSError, ValueError):
                    active.metrics_port = read_json(run_dir / "run.json").get("metrics_port")
        return active.metrics_port

    async def metrics_text(self) -> bytes:
        """Every active run's series (scraped from its own endpoint) merged, plus the service's."""
        families: dict[str, Metric] = {}
        for run_id, active in list(self.active.items()):
            port = self._metrics_port(run_id, active)
            if port is None or self._session is None:
                continue
            try:
                async with self._session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError, OSError):
                continue
            for fam in text_string_to_metric_families(text):
                merged = families.setdefault(fam.name, fam)
                if merged is not fam:
                    merged.samples.extend(fam.samples)
        for fam in families.values():  # series every run exports alike (build info) appear once
            seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
            unique = []
            for sample in fam.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    unique.append(sample)
            fam.samples = unique
        runs = GaugeMetricFamily("loadbench_service_runs", "Runs known to the service by status", labels=["status"])
        counts: dict[str, int] = {}
        for row in self.history.list_runs(limit=100_000):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        for status in ("queued", "running", *FINAL):
            runs.add_metric([status], counts.get(status, 0))
        regression = GaugeMetricFamily("loadbench_regression",
                                       "1 when the latest run of a scenario regressed against its baseline on this metric",
                                       labels=["scenario", "candidate", "metric"])
        for (scenario, candidate, metric), value in sorted(self.regressions.items()):
            regression.add_metric([scenario, candidate, metric], value)

        class _Merged:
            def collect(self) -> list[Metric]:
                return [*families.values(), runs, regression]

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged())  # type: ignore[arg-type]
        return generate_latest(registry)

    def index_html(self) -> str:
        rows = self.history.list_runs(limit=200)
        head = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>loadbench service</title><style>"
                "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
                "td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}.bad{color:#b00020}.ok{color:#1b7f3b}.warn{color:#9a6700}"
                "</style></head><body><h1>loadbench service</h1>")
        out = [head, f"<p>{len(self.active)} running, {sum(1 for r in rows if r['status'] == 'queued')} queued. "
                     "<a href='/openapi.yaml'>API (OpenAPI)</a> · <a href='/metrics'>metrics</a></p>",
               "<table id='runs'><thead><tr><th>run</th><th>scenario</th><th>status</th><th>created</th>"
               "<th>verdicts</th><th>regression</th><th>report</th></tr></thead><tbody>"]
        for r in rows:
            cands = ((r.get("summary") or {}).get("candidates") or {})
            verdicts = ", ".join(
                f"<span class='{_VERDICT_CLASS.get(_verdict_of(c), '')}'>{html.escape(n)}: "
                f"{_VERDICT_WORDS.get(_verdict_of(c), 'no SLO')}</span>"
                for n, c in cands.items())
            if (r.get("summary") or {}).get("valid") is False:
                verdicts = "<span class='bad'>invalid run (the client could not keep up; see the report)</span>" + (
                    ", " + verdicts if verdicts else "")
            reg = r.get("regression") or {}
            reg_text = ("<span class='bad'>regressed: " + html.escape(", ".join(reg.get("regressed", []))) + "</span>"
                        if reg.get("regressed") else ("none" if reg else "-"))
            link = (f"<a href='/api/v1/runs/{html.escape(r['id'])}/artifacts/report.html'>report</a>"
                    if r.get("run_dir") and (Path(r["run_dir"]) / "report.html").exists() else "")
            out.append(f"<tr data-status='{html.escape(r['status'])}'><td>{html.escape(r['id'])}</td><td>{html.escape(r['scenario'])}</td>"
                       f"<td class='status'>{html.escape(r['status'])}</td><td>{_now_iso(r['created_at'])}</td>"
                       f"<td>{verdicts or '-'}</td><td>{reg_text}</td><td>{link}</td></tr>")
        out.append("</tbody></table></body></html>")
        return "".join(out)


# --------------------------------------------------------------------------- HTTP

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)


def _host_guard(service: Service) -> Any:
    """Only Host headers naming this service: a web page cannot reach it by DNS rebinding."""
    allowed = {*LOOPBACK_NAMES, service.cfg.host.lower().strip("[]"), *(h.lower() for h in service.cfg.host_headers)}

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        host = (request.headers.get("Host") or "").lower()
        name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] if ":" in host else host
        if name not in allowed:
            return web.json_response({"error": f"Host {host!r} is not this service (allowed: loopback, the bind address, "
                                               "--allow-host-header)"}, status=421)
        return await handler(request)

    return guard


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        body = {"error": exc.message}
        if exc.field:
            body["field"] = exc.field
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        return web.json_response(body, status=exc.status, headers=headers)
    except (RecursionError, UnicodeError) as exc:  # hostile input, never a 500
        return web.json_response({"error": f"the request could not be read: {type(exc).__name__}"}, status=400)


_VERDICT_CLASS = {"pass": "ok", "fail": "bad", "inconclusive": "warn"}
_VERDICT_WORDS = {"pass": "meets SLO", "fail": "fails SLO", "inconclusive": "SLO inconclusive"}


def _verdict_of(c: dict[str, Any]) -> str | None:
    v = c.get("slo_verdict")
    if v is None and c.get("slo_ok") is not None:
        v = "pass" if c["slo_ok"] else "fail"
    return v


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "request body too large") from None
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None


def build_app(service: Service) -> web.Application:
    app = web.Application(middlewares=[_host_guard(service), _errors], client_max_size=service.cfg.max_body_bytes)
    app[SERVICE] = service
    routes = web.RouteTableDef()

    def run_or_404(run_id: str) -> dict[str, Any]:
        row = service.history.get_run(run_id) if _ID.match(run_id) else None
        if row is None:
            raise ApiError(404, f"no run {run_id!r}")
        return row

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        try:
            service._check_read(request)
        except ApiError:
            raise web.HTTPSeeOther("/login") from None
        return web.Response(text=service.index_html(), content_type="text/html")

    @routes.get("/login")
    async def login_page(_r: web.Request) -> web.Response:
        return web.Response(text=LOGIN_HTML, content_type="text/html")

    @routes.post("/login")
    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str):
            raise ApiError(400, "give the token", "token")
        cookie = service.login(token)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Strict", path="/", max_age=12 * 3600)
        raise resp

    @routes.get("/openapi.yaml")
    async def openapi(_r: web.Request) -> web.Response:
        return web.Response(body=OPENAPI_PATH.read_bytes(), content_type="application/yaml")

    @routes.get("/healthz")
    async def health(_r: web.Request) -> web.Response:
        return _json({"status": "ok", "running": len(service.active)})

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        if not service.cfg.open_metrics:
            service._check_read(request)
        return web.Response(body=await service.metrics_text(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @routes.post("/api/v1/runs")
    async def submit(request: web.Request) -> web.Response:
        service._check_auth(request)
        return _json(service.submit(await _body(request)), status=201)

    @routes.get("/api/v1/runs")
    async def list_runs(request: web.Request) -> web.Response:
        service._check_read(request)
        q = request.query
        status = q.get("status")
        if status is not None and status not in (*ACTIVE, *FINAL):
            raise ApiError(400, f"unknown status {status!r}", "status")
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            raise ApiError(400, "limit must be an integer", "limit") from None
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000", "limit")
        rows = service.history.list_runs(status=status, scenario=q.get("scenario"), limit=limit)
        return _json({"runs": [service.describe(r) for r in rows]})

    @routes.get("/api/v1/runs/{run_id}")
    async def get_run(request: web.Request) -> web.Response:
        service._check_read(request)
        return _json(service.describe(run_or_404(request.match_info["run_id"])))

    @routes.post("/api/v1/runs/{run_id}/cancel")
    async def cancel(request: web.Request) -> web.Response:
        service._check_auth(request)
        run_or_404(request.match_info["run_id"])
        return _json(service.cancel(request.match_info["run_id"]), status=202)

    @routes.get("/api/v1/runs/{run_id}/artifacts/{name}")
    async def artifact(request: web.Request) -> web.StreamResponse:
        service._check_read(request)
        row = run_or_404(request.match_info["run_id"])
        name = request.match_info["name"]
        if name not in ARTIFACTS:
            raise ApiError(404, f"no artifact {name!r}; known: {', '.join(ARTIFACTS)}")
        run_dir = row.get("run_dir") or (str(service._locate_run_dir(row["id"]) or ""))
        path = Path(run_dir) / name if run_dir else None
        if path is None or not path.is_file():
            raise ApiError(404, f"run {row['id']} has no {name} (yet)")
        return web.FileResponse(path)

    @routes.get("/api/v1/runs/{run_id}/events")
    async def events(request: web.Request) -> web.StreamResponse:
        service._check_read(request)
        run_id = request.match_info["run_id"]
        run_or_404(run_id)
        if service.streams >= service.cfg.max_streams:
            raise ApiError(503, f"{service.cfg.max_streams} event streams are open; try again later", retry_after_s=10)
        service.streams += 1
        try:
            return await _stream_events(request, service, run_id)
        finally:
            service.streams -= 1

    @routes.get("/api/v1/schedules")
    async def list_schedules(request: web.Request) -> web.Response:
        service._check_read(request)
        return _json({"schedules": service.history.list_schedules()})

    @routes.post("/api/v1/schedules")
    async def add_schedule(request: web.Request) -> web.Response:
        service._check_auth(request)
        return _json(service.add_schedule(await _body(request)), status=201)

    @routes.delete("/api/v1/schedules/{schedule_id}")
    async def delete_schedule(request: web.Request) -> web.Response:
        service._check_auth(request)
        if not service.history.delete_schedule(request.match_info["schedule_id"]):
            raise ApiError(404, "no such schedule")
        return web.Response(status=204)

    @routes.get("/api/v1/baselines")
    async def list_baselines(request: web.Request) -> web.Response:
        service._check_read(request)
        return _json({"baselines": service.history.baselines(request.query.get("scenario"))})

    @routes.put("/api/v1/baselines/{scenario}/{candidate}")
    async def set_baseline(request: web.Request) -> web.Response:
        return await _set_baseline(request, service, run_or_404)

    app.add_routes(routes)

    async def on_startup(_app: web.Application) -> None:
        await service.start()

    async def on_cleanup(_app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.on_response_prepare.append(_harden_response)
    return app


async def _stream_events(request: web.Request, service: Service, run_id: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    deadline = time.monotonic() + service.cfg.stream_max_s  # every stream ends
    while time.monotonic() < deadline:
        row = service.history.get_run(run_id) or {}
        event = {"id": run_id, "status": row.get("status")}
        if run_id in service.active:
            event["progress"] = service.progress(run_id)
        await resp.write(b"event: progress\ndata: " + orjson.dumps(event) + b"\n\n")
        if row.get("status") in FINAL:
            await resp.write(b"event: end\ndata: " + orjson.dumps(service.describe(row)) + b"\n\n")
            break
        await asyncio.sleep(1.0)
    return resp


async def _set_baseline(request: web.Request, service: Service, run_or_404: Any) -> web.Response:
    service._check_auth(request)
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("run_id"), str):
        raise ApiError(400, "give run_id: the run whose results become the baseline", "run_id")
    row = run_or_404(body["run_id"])
    scenario, candidate = request.match_info["scenario"], request.match_info["candidate"]
    if row["status"] != "done" or candidate not in ((row.get("summary") or {}).get("candidates") or {}):
        raise ApiError(409, f"run {row['id']} is not a finished run with candidate {candidate!r}")
    if row["scenario"] != scenario:
        raise ApiError(409, f"run {row['id']} is of scenario {row['scenario']!r}, not {scenario!r}")
    service.history.set_baseline(scenario, candidate, row["id"])
    return _json({"scenario": scenario, "candidate": candidate, "run_id": row["id"]})


SESSION_COOKIE = "loadbench_session"
# Every page the service serves (the index, the login form, run reports) runs under this policy:
# no network fetches, no framing, inline styles and scripts only (reports are single files).
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "font-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
LOGIN_HTML = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>loadbench service: log in</title>"
              "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}</style></head><body>"
              "<h1>loadbench service</h1><p>Reading runs needs the service's token (or its read-only token).</p>"
              "<form method='post' action='/login'><label>token <input type='password' name='token' autocomplete='off'></label> "
              "<button type='submit'>log in</button></form></body></html>")


async def _harden_response(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def serve(cfg: ServiceConfig) -> None:
    token = os.environ.get(cfg.token_env)
    if not token:
        raise ConfigError.single(f"--token-env {cfg.token_env}", f"environment variable {cfg.token_env} is not set "
                                 "(it holds the bearer token every mutating API call must present)")
    if not cfg.scenarios_dir.is_dir():
        raise ConfigError.single("--scenarios", f"{cfg.scenarios_dir} is not a directory")
    read_token = None
    if cfg.read_token_env:
        read_token = os.environ.get(cfg.read_token_env)
        if not read_token:
            raise ConfigError.single(f"--read-token-env {cfg.read_token_env}", f"environment variable {cfg.read_token_env} is not set")
    protected = [e for e in (cfg.token_env, cfg.read_token_env) if e and e in cfg.key_grants]
    if protected:
        raise ConfigError.single("--allow-key", f"{protected[0]} holds the service's own token and can never be granted to runs")
    service = Service(cfg, token, read_token)
    print(f"loadbench serve: http://{cfg.host}:{cfg.port}/ (API /api/v1, docs /openapi.yaml, metrics /metrics); "
          f"data in {cfg.data_dir}", file=sys.stderr, flush=True)
    web.run_app(build_app(service), host=cfg.host, port=cfg.port, print=None, access_log=None)
