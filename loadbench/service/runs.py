"""The service's runs: lifecycle, authentication, the queue, child processes, baselines, schedules, retention."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets as secrets_mod
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..config.errors import ConfigError
from ..config.files import read_json, write_json_atomic
from .common import (
    _ID,
    CHILD_LOG,
    FINAL,
    POLICY_FILE,
    SESSION_COOKIE,
    SWEEP_OPTIONS,
    ActiveRun,
    ApiError,
    ServiceConfig,
    _tail_lines,
)
from .history import History, compact_summary
from .policy import Policy, child_environment
from .submissions import SubmissionChecks
from .views import ServiceViews


class Service(SubmissionChecks, ServiceViews):
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
        from ..stats.regression import compare_run_dirs

        baselines = {b["candidate"]: b["run_id"] for b in self.history.baselines(scenario)}
        if not baselines:
            return None
        result: dict[str, Any] = {"candidates": {}, "regressed": []}
        for candidate, base_id in baselines.items():
            base_row = self.history.get_run(base_id)
            if candidate not in summary.get("candidates", {}) or not base_row or not base_row.get("run_dir"):
                continue
            cmp = compare_run_dirs(Path(base_row["run_dir"]), run_dir, summary, candidates={candidate: candidate})
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
