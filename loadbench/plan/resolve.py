"""What a run will send: the scenario resolved (items, scorers, secrets, trace) and its schedule."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config.dataset import Item
from ..config.errors import ConfigError, Problem
from ..config.profiles import PROFILES, with_params
from ..config.scenario import JudgeConfig, Scenario, endpoint_url, request_headers
from ..config.trace import SequentialOrder, TraceReplay
from ..pacing.pacer import ItemOrder, arrival_offsets_ns
from ..pacing.runner import Plan
from ..scoring.judge import JudgeSettings
from ..scoring.registry import CompiledSpec
from ..stats.sequential import schedule_bounds
from .variants import Expanded
from .workload import load_workload

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class Resolved:
    scenario: Scenario
    scenario_path: str
    dataset_path: Path | None  # None: a trace of synthetic prompts
    items: list[Item]
    secrets: dict[str, str]  # candidate name -> API key (never written anywhere)
    specs: list[list[CompiledSpec]]  # scorers per item
    judge_secret: str | None = None
    turn_specs: dict[tuple[int, int], list[CompiledSpec]] = field(default_factory=dict)  # later turns of sessions
    trace: TraceReplay | None = None
    variants: Expanded | None = None  # fidelity variants: variant and base item of each item


def resolve(scenario: Scenario, scenario_path: str, scenario_dir: Path, only: list[str] | None = None) -> Resolved:
    """Check everything that can be checked before any traffic; all problems at once."""
    problems: list[Problem] = []
    if only:
        names = [c.name for c in scenario.candidates]
        unknown = [n for n in only if n not in names]
        if unknown:
            problems.append(Problem("--candidate", None, "", f"unknown candidate(s) {', '.join(unknown)}; scenario has {', '.join(names)}"))
        scenario = scenario.model_copy(update={"candidates": [c for c in scenario.candidates if c.name in only]})
    keys: dict[str, str] = {}
    for i, cand in enumerate(scenario.candidates):
        field = f"candidates[{i}]"
        if cand.sim is not None and cand.sim not in PROFILES:
            problems.append(Problem(scenario_path, None, f"{field}.sim", f"unknown simulator profile {cand.sim!r}; known: {', '.join(PROFILES)}"))
        elif cand.sim is not None and cand.sim_params:
            try:
                with_params(PROFILES[cand.sim], cand.sim_params)
            except ValueError as exc:
                problems.append(Problem(scenario_path, None, f"{field}.sim_params", str(exc)))
        if cand.api_key_env:
            value = os.environ.get(cand.api_key_env)
            if not value:
                problems.append(Problem(scenario_path, None, f"{field}.api_key_env",
                                        f"environment variable {cand.api_key_env} is not set (it should hold the API key)"))
            else:
                keys[cand.name] = value
    judge = scenario.scoring.judge
    judge_secret = None
    if judge is not None:
        if judge.sim is not None and judge.sim not in PROFILES:
            problems.append(Problem(scenario_path, None, "scoring.judge.sim", f"unknown simulator profile {judge.sim!r}"))
        if judge.api_key_env:
            judge_secret = os.environ.get(judge.api_key_env)
            if not judge_secret:
                problems.append(Problem(scenario_path, None, "scoring.judge.api_key_env",
                                        f"environment variable {judge.api_key_env} is not set (it should hold the judge's API key)"))
    workload = None
    try:
        workload = load_workload(scenario, scenario_path, scenario_dir)
    except ConfigError as err:
        problems.extend(err.problems)
    if problems or workload is None:
        raise ConfigError(problems)
    return Resolved(scenario, scenario_path, workload.dataset_path, workload.items, keys, workload.specs, judge_secret,
                    workload.turn_specs, workload.trace, workload.variants)


def build_plan(scenario: Scenario, items: list[Item], trace: TraceReplay | None = None,
               groups: list[int] | None = None) -> Plan:
    load = scenario.load
    ids = [item.id or "" for item in items]
    warmup_ns = round(load.warmup_s * NS_PER_S)
    if trace is not None:
        return Plan(offsets_ns=trace.offsets_ns, order=SequentialOrder(trace.item_of_row, len(items)),  # type: ignore[arg-type]
                    item_ids=ids, warmup_ns=warmup_ns)
    order = ItemOrder(len(items), load.seed, groups)
    if load.mode == "closed":
        import numpy as np

        return Plan(
            offsets_ns=np.zeros(0, dtype=np.int64), order=order, item_ids=ids, warmup_ns=warmup_ns,
            mode="closed", users=load.concurrency or 1, requests=load.requests,
            duration_ns=None if load.duration_s is None else int(load.duration_s * NS_PER_S),
        )
    duration_s, requests = schedule_bounds(load)
    offsets = arrival_offsets_ns(
        load.arrival, load.rate_qps, seed=load.seed, burstiness=load.burstiness,
        duration_s=duration_s, requests=requests, warmup_s=load.warmup_s,
    )
    return Plan(offsets_ns=offsets, order=order, item_ids=ids, warmup_ns=warmup_ns)


def build_judge_settings(judge_cfg: JudgeConfig, base_url: str, secret: str | None) -> JudgeSettings:
    """The judge's client settings; a simulated judge without pricing uses its profile's prices."""
    headers = request_headers(judge_cfg.headers, secret)
    pricing = judge_cfg.pricing
    if judge_cfg.sim is not None and pricing.input_per_mtok == 0 and pricing.output_per_mtok == 0:
        prof = PROFILES[judge_cfg.sim]
        pricing = pricing.model_copy(update={"input_per_mtok": prof.input_per_mtok, "output_per_mtok": prof.output_per_mtok})
    return JudgeSettings(
        url=endpoint_url(base_url, "chat"), model=judge_cfg.model or (f"sim-{judge_cfg.sim}" if judge_cfg.sim else None),
        headers=headers, timeout_s=judge_cfg.timeout_s, max_concurrency=judge_cfg.max_concurrency,
        rate_qps=judge_cfg.rate_qps, max_tokens=judge_cfg.max_tokens, input_per_mtok=pricing.input_per_mtok,
        output_per_mtok=pricing.output_per_mtok, secret=secret,
    )


def new_run_id(name: str | None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in (name or "run"))[:40]
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"
