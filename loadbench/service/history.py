"""Run history in SQLite: runs (queue and results), schedules and baselines; the schema migrates forward."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ..stats.decision import slo_verdict

# Each entry moves the schema one version forward; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,                -- run | sweep
        scenario TEXT NOT NULL,            -- name (file in the scenarios directory) or "(inline)"
        request TEXT NOT NULL,             -- the submission (JSON)
        status TEXT NOT NULL,              -- queued | running | done | failed | cancelled | interrupted
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        run_dir TEXT,
        exit_code INTEGER,
        error TEXT,
        summary TEXT,                      -- compact: per candidate verdicts and headline numbers (JSON)
        schedule_id TEXT
    );
    CREATE INDEX runs_by_status ON runs(status, created_at);
    CREATE INDEX runs_by_scenario ON runs(scenario, created_at);
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        scenario TEXT NOT NULL,
        cron TEXT NOT NULL,
        request TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_fired_at REAL,
        enabled INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE baselines (
        scenario TEXT NOT NULL,
        candidate TEXT NOT NULL,
        run_id TEXT NOT NULL,
        set_at REAL NOT NULL,
        PRIMARY KEY (scenario, candidate)
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN regression TEXT;   -- comparison with the baselines (JSON)
    """,
]

RUN_COLUMNS = ("id", "kind", "scenario", "request", "status", "created_at", "started_at", "finished_at", "run_dir",
               "exit_code", "error", "summary", "schedule_id", "regression")
JSON_COLUMNS = {"request", "summary", "regression"}
ACTIVE = ("queued", "running")


class History:
    """One connection, used from one thread at a time (the service's event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.Lock()
        self.migrate()

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise RuntimeError(f"{self.path} has schema version {current}, newer than this loadbench ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._tx():
                for statement in (s.strip() for s in script.split(";")):
                    if statement:
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ runs

    def add_run(self, run_id: str, kind: str, scenario: str, request: dict[str, Any], schedule_id: str | None = None) -> None:
        with self._tx():
            self._db.execute("INSERT INTO runs (id, kind, scenario, request, status, created_at, schedule_id) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                             (run_id, kind, scenario, orjson.dumps(request).decode(), time.time(), schedule_id))

    def update_run(self, run_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}")
        values = [orjson.dumps(v).decode() if k in JSON_COLUMNS and v is not None else v for k, v in fields.items()]
        with self._tx():
            self._db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?", (*values, run_id))

    def expired_runs(self, keep: int, older_than: float) -> list[str]:
        """Finished runs past the retention policy (beyond the newest `keep`, or finished before
        `older_than`), never a baseline's run."""
        rows = self._db.execute(
            "SELECT id, finished_at FROM runs WHERE status IN ('done', 'failed', 'cancelled', 'interrupted') "
            "AND id NOT IN (SELECT run_id FROM baselines) ORDER BY created_at DESC").fetchall()
        return [run_id for i, (run_id, finished) in enumerate(rows) if i >= keep or (finished or 0) < older_than]

    def delete_runs(self, run_ids: list[str]) -> None:
        with self._tx():
            self._db.executemany("DELETE FROM runs WHERE id = ?", [(r,) for r in run_ids])

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    def list_runs(self, *, status: str | None = None, scenario: str | None = None, limit: int = 50,
                  before: float | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if scenario:
            where.append("scenario = ?")
            args.append(scenario)
        if before is not None:
            where.append("created_at < ?")
            args.append(before)
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY created_at DESC LIMIT ?"
        return [_run_row(r) for r in self._db.execute(sql, (*args, limit)).fetchall()]

    def next_queued(self) -> dict[str, Any] | None:
        row = self._db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE status = 'queued' ORDER BY created_at LIMIT 1").fetchone()
        return _run_row(row) if row else None

    # ------------------------------------------------------------------ schedules

    def add_schedule(self, schedule_id: str, scenario: str, cron: str, request: dict[str, Any]) -> None:
        with self._tx():
            self._db.execute("INSERT INTO schedules (id, scenario, cron, request, created_at) VALUES (?, ?, ?, ?, ?)",
                             (schedule_id, scenario, cron, orjson.dumps(request).decode(), time.time()))

    def list_schedules(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT id, scenario, cron, request, created_at, last_fired_at, enabled FROM schedules "
                                "ORDER BY created_at").fetchall()
        return [{"id": r[0], "scenario": r[1], "cron": r[2], "request": orjson.loads(r[3]), "created_at": r[4],
                 "last_fired_at": r[5], "enabled": bool(r[6])} for r in rows]

    def schedule_fired(self, schedule_id: str, at: float) -> None:
        with self._tx():
            self._db.execute("UPDATE schedules SET last_fired_at = ? WHERE id = ?", (at, schedule_id))

    def delete_schedule(self, schedule_id: str) -> bool:
        with self._tx():
            return self._db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount > 0

    # ------------------------------------------------------------------ baselines

    def set_baseline(self, scenario: str, candidate: str, run_id: str) -> None:
        with self._tx():
            self._db.execute("INSERT INTO baselines (scenario, candidate, run_id, set_at) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (scenario, candidate) DO UPDATE SET run_id = excluded.run_id, set_at = excluded.set_at",
                             (scenario, candidate, run_id, time.time()))

    def baselines(self, scenario: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT scenario, candidate, run_id, set_at FROM baselines"
        rows = self._db.execute(sql + (" WHERE scenario = ?" if scenario else "") + " ORDER BY scenario, candidate",
                                (scenario,) if scenario else ()).fetchall()
        return [{"scenario": r[0], "candidate": r[1], "run_id": r[2], "set_at": r[3]} for r in rows]


def _run_row(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(RUN_COLUMNS, row))
    for key in JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = orjson.loads(out[key])
    return out


def compact_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """What the history keeps of a summary: verdicts and headline numbers per candidate."""
    out: dict[str, Any] = {"valid": (summary.get("validity") or {}).get("valid", True),
                           "recommended": (summary.get("decision") or {}).get("recommended"), "candidates": {}}
    for name, c in (summary.get("candidates") or {}).items():
        out["candidates"][name] = {
            "slo_ok": (c.get("slo") or {}).get("ok"),  # point estimate (compatibility)
            "slo_verdict": None if c.get("slo") is None else slo_verdict(c["slo"]),
            "accuracy": (c.get("accuracy") or {}).get("value"),
            "latency_p95_s": (c.get("latency_s") or {}).get("p95"),
            "goodput_rps": (c.get("goodput") or {}).get("rps"),
            "cost_per_correct_usd": (c.get("cost_usd") or {}).get("per_correct"),
            "requests": (c.get("requests") or {}).get("sent"),
            "errors": (c.get("requests") or {}).get("error_total"),
        }
    return out
