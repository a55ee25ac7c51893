"""Scores a finished run's stored responses again, without sending a request to any candidate."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..config.dataset import Item
from ..config.errors import ConfigError, Problem
from ..config.files import read_json, write_json_atomic
from ..config.profiles import PROFILES
from ..config.scenario import load_scenario
from ..engine.scoring_thread import score_record, specs_for
from ..pacing.records import RequestResult
from ..pacing.results_log import iter_results
from ..plan.resolve import build_judge_settings
from ..plan.workload import load_workload
from ..scoring.judge import JudgeClient
from ..scoring.scores import UNSCORED
from ..sim.process import SimProcess, start_sim, stop_sim
from ..stats.rebuild import Rebuilt, rebuild_summary
from ..views.pages import write_run_reports

RESCORE_CONCURRENCY = 64


@dataclass(slots=True)
class Rescored:
    rebuilt: Rebuilt
    records: int
    changed: int
    backup: Path | None


async def rescore_run(run_dir: Path, scenario_path: str | None = None, overrides: list[str] = ()) -> Rescored:
    meta_path = run_dir / "run.json"
    log_path = run_dir / "results.jsonl"
    if not log_path.exists():
        raise ConfigError.single(str(run_dir), "no results.jsonl in this directory (is it a loadbench run?)")
    meta: dict[str, Any] = read_json(meta_path) if meta_path.exists() else {}
    scenario_file = scenario_path or meta.get("scenario_file")
    if not scenario_file:
        raise ConfigError.single(str(run_dir), "the run does not name its scenario; pass --scenario FILE")
    scenario, scenario_dir = load_scenario(scenario_file, list(overrides))
    workload = load_workload(scenario, str(scenario_file), scenario_dir)
    dataset_path, items, specs = workload.dataset_path, workload.items, workload.specs
    problems: list[Problem] = []
    judge_cfg = scenario.scoring.judge
    secret = None
    if judge_cfg is not None and judge_cfg.api_key_env:
        secret = os.environ.get(judge_cfg.api_key_env)
        if not secret:
            problems.append(Problem(str(scenario_file), None, "scoring.judge.api_key_env",
                                    f"environment variable {judge_cfg.api_key_env} is not set"))
    if judge_cfg is not None and judge_cfg.sim is not None and judge_cfg.sim not in PROFILES:
        problems.append(Problem(str(scenario_file), None, "scoring.judge.sim", f"unknown simulator profile {judge_cfg.sim!r}"))
    if problems:
        raise ConfigError(problems)
    by_id: dict[str, int] = {item.id or "": i for i, item in enumerate(items)}

    records: list[RequestResult] = []
    skipped: list[tuple[int, str]] = []
    for lineno, record, problem in iter_results(log_path):
        if record is None:
            skipped.append((lineno, problem or "unreadable"))
        else:
            records.append(record)

    sim: SimProcess | None = None
    session: aiohttp.ClientSession | None = None
    judge: JudgeClient | None = None
    changed = 0
    try:
        if judge_cfg is not None:
            if judge_cfg.sim is not None:
                sim = await start_sim(judge_cfg.sim, dataset_path, scenario.load.seed)
                base = sim.base_url
            else:
                base = judge_cfg.base_url or ""
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=judge_cfg.max_concurrency), trust_env=False)
            judge = JudgeClient(session, build_judge_settings(judge_cfg, base, secret))
        gate = asyncio.Semaphore(RESCORE_CONCURRENCY)

        async def one(r: RequestResult) -> None:
            nonlocal changed
            before = (r.verdict, orjson.dumps(r.scores))
            index = by_id.get(r.item_id)
            if index is None:
                r.verdict = UNSCORED
                r.scores = [{"scorer": "item", "name": "item", "status": UNSCORED, "value": None,
                             "error_class": "evalset.item_missing", "gating": True}]
            else:
                r.item_index = index
                async with gate:
                    await score_record(r, items[index].turn_item(r.turn), specs_for(r, specs, workload.turn_specs), judge)
            if (r.verdict, orjson.dumps(r.scores)) != before:
                changed += 1

        await asyncio.gather(*(one(r) for r in records))
    finally:
        if session is not None:
            await session.close()
        if sim is not None:
            await stop_sim(sim)

    backup = run_dir / "results.before-rescore.jsonl"
    if not backup.exists():
        shutil.copyfile(log_path, backup)
    else:
        backup = None
    tmp = run_dir / ".results.jsonl.rescore.tmp"
    with open(tmp, "wb") as f:
        for r in records:
            f.write(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, log_path)
    meta["item_tags"] = [item.tags for item in items]
    meta["rescored_with"] = str(scenario_file)
    write_json_atomic(meta_path, meta)
    rebuilt = rebuild_summary(run_dir)
    rebuilt.summary["outcome"]["rescored"] = True
    write_json_atomic(run_dir / "summary.json", rebuilt.summary)
    write_run_reports(run_dir, rebuilt.summary)
    return Rescored(rebuilt, len(records), changed, backup)


__all__ = ["Item", "Rescored", "rescore_run"]
