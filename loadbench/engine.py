"""Runs a scenario end to end: resolve, start simulators, drive the load, write the run."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry

from . import __version__
from .clock import Clock, MonotonicClock
from .errors import ConfigError, Problem
from .files import write_json_atomic
from .hdr import HlogWriter
from .lanes import build_lanes, candidate_headers, prewarm_lanes
from .metrics import LoadbenchCollector, MetricsServer, RunState, push
from .plan import NS_PER_S, Resolved, build_judge_settings, build_plan, new_run_id
from .progress import ProgressView, progress_lines
from .quality import QualityAggregator
from .recorder import Recorder
from .records import RequestResult
from .reports import write_run_reports
from .results_log import ResultsLog
from .runner import Lane, Runner, RunOutcome
from .scenario import AbortRule, Candidate
from .scoring_worker import ScoringWorker
from .sequential import look_plan, schedule_bounds
from .sessions import session_aggregator
from .sim_process import SimProcess, start_sim, stop_sim
from .slo import request_check
from .slo_clauses import parse_clauses
from .summary import LiveVerdicts, add_verdicts, build_summary, slo_confidence
from .validity import ValidityLimits
from .workers import PoolBase, WorkerPool, worker_spec

PREFLIGHT_TIMEOUT_S = 10.0
HANDOFF_S = 0.02
WORKER_START_MARGIN_NS = 50_000_000  # how long finished records wait to be handed to the scoring thread as a batch


@dataclass(slots=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    outcome: RunOutcome


def _public_candidate(cand: Candidate, base_url: str) -> dict[str, Any]:
    data = cand.model_dump(exclude={"headers"})
    data["base_url"] = base_url
    data["header_names"] = sorted(cand.headers)
    return data


def provenance() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    return {
        "loadbench": __version__,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "event_loop": f"{type(loop).__module__}.{type(loop).__name__}",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
    }


async def _preflight(session: aiohttp.ClientSession, cand: Candidate, base_url: str, headers: dict[str, str],
                     scenario_path: str, index: int, secret: str | None) -> Problem | None:
    """One GET of /models: a clear message before any load instead of a run of errors."""
    url = base_url.rstrip("/") + "/models"
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=PREFLIGHT_TIMEOUT_S)) as resp:
            if resp.status in (401, 403):
                return Problem(scenario_path, None, f"candidates[{index}]", f"{cand.name}: {url} refused the credentials (HTTP {resp.status})")
            if resp.status >= 500:
                return Problem(scenario_path, None, f"candidates[{index}]", f"{cand.name}: {url} answered HTTP {resp.status}")
            return None  # 404 and friends: many gateways have no /models; the endpoint is there
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        text = str(exc) or type(exc).__name__
        if secret:
            text = text.replace(secret, "[REDACTED]")
        return Problem(scenario_path, None, f"candidates[{index}].base_url", f"{cand.name}: cannot reach {base_url}: {text}")


@dataclass(slots=True)
class MetricsOptions:
    port: int | None = 9464  # None: no /metrics endpoint
    host: str = "127.0.0.1"
    pushgateway: str | None = None
    linger_s: float = 0.0  # keep serving /metrics this long after the run (for a last scrape)
    port_is_default: bool = True


async def execute(
    resolved: Resolved,
    *,
    out_root: Path,
    clock: Clock | None = None,
    progress: ProgressView | None = None,
    install_signal_handlers: bool = True,
    quiet: bool = False,
    metrics: MetricsOptions | None = None,
    workers: int = 1,
    ray_address: str | None = None,
) -> RunResult:
    scenario = resolved.scenario
    clock = clock or MonotonicClock()
    loop = asyncio.get_running_loop()
    pool: PoolBase | None = None
    pooled = workers > 1 or ray_address is not None
    sims: list[SimProcess] = []
    sessions: list[aiohttp.ClientSession] = []
    transports: list[Any] = []
    try:
        base_urls: dict[str, str] = {}
        sim_seed = scenario.load.seed
        judge_cfg = scenario.scoring.judge
        sim_profiles = [(c.sim, c.sim_params, c.sim_faults.model_dump() if c.sim_faults else None)
                        for c in scenario.candidates if c.sim is not None]
        if judge_cfg is not None and judge_cfg.sim is not None:
            sim_profiles.append((judge_cfg.sim, {}, None))
        started = await asyncio.gather(
            *(start_sim(profile, resolved.dataset_path, sim_seed, params, faults) for profile, params, faults in sim_profiles),
            return_exceptions=True,
        )
        failures = [s for s in started if isinstance(s, BaseException)]
        sims = [s for s in started if isinstance(s, SimProcess)]
        if failures:
            raise failures[0]
        sim_iter = iter(sims)
        for cand in scenario.candidates:
            base_urls[cand.name] = next(sim_iter).base_url if cand.sim is not None else (cand.base_url or "")
        judge_settings = None
        if judge_cfg is not None:
            judge_base = next(sim_iter).base_url if judge_cfg.sim is not None else (judge_cfg.base_url or "")
            judge_settings = build_judge_settings(judge_cfg, judge_base, resolved.judge_secret)

        plan = build_plan(scenario, resolved.items, resolved.trace)
        if pooled:  # the workers build their own lanes; here only proxies (their in-flight counts)
            lanes = [Lane(c.name, _sent_by_workers, c.max_in_flight) for c in scenario.candidates]
        else:
            lanes, transports = build_lanes(resolved, base_urls, clock)
        # a plain session per candidate for the preflight, apart from the sending pools
        built_sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=not c.insecure), trust_env=False)
                          for c in scenario.candidates]
        sessions.extend(built_sessions)
        preflight: list[Any] = []
        for index, cand in enumerate(scenario.candidates):
            if cand.sim is None:
                secret = resolved.secrets.get(cand.name)
                preflight.append(_preflight(built_sessions[index], cand, base_urls[cand.name], candidate_headers(cand, secret),
                                            resolved.scenario_path, index, secret))
        problems = [p for p in await asyncio.gather(*preflight) if p is not None]
        if problems:
            raise ConfigError(problems)
        if not pooled:
            await prewarm_lanes(resolved, transports)

        run_id = new_run_id(scenario.name)
        run_dir = out_root / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        meta = {
            "run_id": run_id,
            "scenario": scenario.name or Path(resolved.scenario_path).stem,
            "scenario_path": resolved.scenario_path,
            "scenario_file": str(Path(resolved.scenario_path).resolve()),
            "dataset": str(resolved.dataset_path) if resolved.dataset_path is not None else None,
            "trace": None if resolved.trace is None else {
                "path": scenario.load.trace.path if scenario.load.trace else None, "rows": resolved.trace.rows,
                "span_s": resolved.trace.span_s, "time_scale": scenario.load.trace.time_scale if scenario.load.trace else 1.0,
                "resorted": resolved.trace.resorted,
            },
            "items": len(resolved.items),
            "started_at": started_at,
            "load": scenario.load.model_dump(),
            "planned_requests": len(plan.offsets_ns) if plan.mode == "open" else None,
            "candidates": {c.name: _public_candidate(c, base_urls[c.name]) for c in scenario.candidates},
            "judge": judge_cfg.model_dump(exclude={"headers"}) if judge_cfg is not None else None,
            "item_tags": [item.tags for item in resolved.items],
            "session_items": [i for i, item in enumerate(resolved.items) if item.is_session],
            "agentic_items": [i for i, item in enumerate(resolved.items) if item.is_agentic],
            "multi_turn_items": [i for i, item in enumerate(resolved.items) if item.turns],
            "slo": scenario.slo,
            "validity": scenario.validity.limits(),
            "decision": scenario.decision.model_dump(),
            "provenance": provenance(),
        }
        write_json_atomic(run_dir / "run.json", meta)

        view = None if quiet else (progress or ProgressView())
        results_log = ResultsLog(run_dir / "results.jsonl", store_text=scenario.output.store_text)
        hlog_file = open(run_dir / "histograms.hlog", "w", encoding="ascii")
        names = [c.name for c in scenario.candidates]
        recorder = Recorder(names, HlogWriter(hlog_file))
        on_time = request_check(parse_clauses(scenario.slo))
        quality = QualityAggregator(names, [item.tags for item in resolved.items], on_time,
                                    session_aggregator(meta, on_time))
        worker = ScoringWorker(resolved.items, resolved.specs, results_log, quality, judge_settings,
                               turn_specs=resolved.turn_specs)
        worker.start()
        submit_batch = worker.submit_batch
        metrics = metrics or MetricsOptions(port=None)
        registry = CollectorRegistry(auto_describe=False)
        lane_by_name: dict[str, Lane] = {}
        run_state = RunState(
            run_id=run_id, scenario=meta["scenario"], mode=scenario.load.mode, arrival=scenario.load.arrival,
            offered_rate_qps=(resolved.trace.rows / max(resolved.trace.span_s, 1e-3)) if resolved.trace else scenario.load.rate_qps,
            started_at_s=time.time(), warmup_s=scenario.load.warmup_s,
            models={c.name: c.model or (f"sim-{c.sim}" if c.sim else "") for c in scenario.candidates},
        )
        registry.register(LoadbenchCollector(run_state, recorder, quality,
                                             lambda name: lane_by_name[name].in_flight if name in lane_by_name else 0))
        server = None
        if metrics.port is not None:
            server = MetricsServer(registry, metrics.host, metrics.port)
            try:
                server.start()
            except OSError as exc:
                if not metrics.port_is_default:
                    worker.close()
                    raise ConfigError.single("--metrics-port", f"cannot listen on {metrics.host}:{metrics.port}: {exc.strerror}") from None
                server = MetricsServer(registry, metrics.host, 0)
                server.start()
            if view is not None or not quiet:
                sys.stderr.write(f"loadbench: metrics at http://{metrics.host}:{server.port}/metrics\n")
            meta["metrics_port"] = server.port
            write_json_atomic(run_dir / "run.json", meta)  # the service reads the port from here

        # Finished records go to the scoring thread in small batches: one cross-thread wake-up
        # per batch instead of one per request keeps the sending loop's per-request cost down.
        pending: list[RequestResult] = []
        handoff_scheduled = False

        def hand_over() -> None:
            nonlocal pending, handoff_scheduled
            handoff_scheduled = False
            if pending:
                batch, pending = pending, []
                submit_batch(batch)

        def sink(r: RequestResult) -> None:
            nonlocal handoff_scheduled
            recorder(r)
            pending.append(r)
            if not handoff_scheduled:
                handoff_scheduled = True
                loop.call_later(HANDOFF_S, hand_over)

        runner: Runner | PoolBase
        if pooled:
            spec = worker_spec(resolved, base_urls)
            pool_cls: type[PoolBase] = WorkerPool
            if ray_address is not None:
                from .ray_pool import RayPool

                pool_cls = RayPool
                meta["ray"] = ray_address
            pool = runner = pool_cls(spec, workers, lanes, sink, clock, grace_ns=int(scenario.load.grace_s * NS_PER_S),
                                     loop_lag_sink=recorder.record_loop_lag_us)
            try:
                await pool.start()
            except (RuntimeError, TimeoutError) as exc:
                worker.close()
                if server is not None:
                    server.stop()
                raise ConfigError.single("--workers", f"the worker processes did not start: {exc}") from None
            meta["workers"] = workers
        else:
            runner = Runner(
                plan, lanes, sink, clock, on_saturation=scenario.load.on_saturation,
                grace_ns=int(scenario.load.grace_s * NS_PER_S), loop_lag_sink=recorder.record_loop_lag_us,
            )
        lane_by_name.update({lane.name: lane for lane in lanes})
        planned_s = (scenario.load.warmup_s + (schedule_bounds(scenario.load)[0] or 0)) or (
            float(plan.offsets_ns[-1]) / NS_PER_S if len(plan.offsets_ns) else None
        )
        looks = look_plan(scenario.load)
        live = LiveVerdicts(parse_clauses(scenario.slo), recorder, quality)
        run_state.slo = live if scenario.slo else None
        sequential: dict[str, Any] = {**looks.describe(), "looks_taken": 0, "decided_at_s": None} if looks else {}

        history: list[tuple[float, dict[str, tuple[int, int, int]]]] = []

        async def ticker() -> None:
            next_tick = loop.time()
            while True:
                next_tick += 1.0  # on a fixed grid: the work below does not push later ticks back
                await asyncio.sleep(max(0.0, next_tick - loop.time()))
                elapsed = (clock.now_ns() - runner.t0_ns) / NS_PER_S
                for _ in recorder.flush_steps(elapsed):
                    await asyncio.sleep(0)  # sends that fell due go out between the steps
                if scenario.abort_on and not runner.stopping:
                    reason = _abort_reason(scenario.abort_on, recorder, history, elapsed)
                    if reason:
                        sys.stderr.write(f"\nloadbench: {reason}; stopping the run\n")
                        runner.request_stop(reason)
                if looks is not None and not runner.stopping and elapsed >= looks.look_at(sequential["looks_taken"]):
                    sequential["looks_taken"] += 1
                    if live.all_decided(looks.per_look_confidence):
                        sequential["decided_at_s"] = round(elapsed, 3)
                        runner.request_stop(f"decided: every SLO verdict settled at look {sequential['looks_taken']} "
                                            f"({elapsed:.0f}s)")
                if run_state.phase != "drain":
                    run_state.phase = "warmup" if elapsed < scenario.load.warmup_s else "measure"
                    if runner.stopping or (plan.mode == "open" and runner.dispatched >= len(plan.offsets_ns)):
                        run_state.phase = "drain"
                if view is not None:
                    view.show(progress_lines(recorder, lanes, elapsed, planned_s), elapsed)

        signals_installed: list[int] = []
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal support (e.g. not the main thread)
                    loop.add_signal_handler(sig, _on_signal, runner, sig)
                    signals_installed.append(sig)
        tick = loop.create_task(ticker())
        # Everything allocated so far lives for the whole run: keep the cyclic GC from
        # rescanning it in full collections that would stall the sending loop.
        gc.collect()
        gc.freeze()
        # Workers start at a shared moment slightly ahead, so the first arrivals are not late
        # by the time it takes the "go" to reach them.
        t0 = clock.now_ns() + (WORKER_START_MARGIN_NS if pool is not None else 0)
        runner.t0_ns = t0
        cpu_before = time.thread_time()
        try:
            outcome = await runner.run(t0)
            loop_cpu_ratio = (time.thread_time() - cpu_before) / max((clock.now_ns() - t0) / NS_PER_S, 1e-9)
            coordinator_cpu_ratio = None
            if pool is not None:  # the pacing loops are the workers'; the coordinator only records
                coordinator_cpu_ratio, loop_cpu_ratio = loop_cpu_ratio, pool.loop_cpu_ratio or 0.0
        finally:
            tick.cancel()
            await asyncio.gather(tick, return_exceptions=True)
            for sig in signals_installed:
                loop.remove_signal_handler(sig)
            elapsed = (clock.now_ns() - t0) / NS_PER_S
            recorder.flush(elapsed)
            hlog_file.close()
            gc.unfreeze()
            hand_over()
            # Scoring finishes off the loop (judge calls may still be running); wait for it.
            if worker.backlog and view is not None:
                sys.stderr.write(f"loadbench: scoring the last {worker.backlog} responses...\n")
            await asyncio.to_thread(worker.close)
            run_state.phase = "done"
            if worker.error is not None:
                if server is not None:
                    server.stop()
                raise worker.error
        if view is not None:
            view.show(progress_lines(recorder, lanes, elapsed, planned_s), 1e9)
        outcome_info = {
            "stop_reason": outcome.stop_reason,
            "duration_s": outcome.end_ns / NS_PER_S,
            "planned_requests": outcome.planned,
            "dispatched_positions": outcome.dispatched,
            "cancelled_in_flight": outcome.cancelled_in_flight,
            "results_lines": results_log.lines,
            "loop_cpu_ratio": loop_cpu_ratio,
        }
        outcome_info["slo_confidence"] = looks.per_look_confidence if looks is not None else scenario.load.confidence
        if looks is not None:
            outcome_info["sequential"] = sequential
        if pool is not None:
            outcome_info["workers"] = outcome.extra.get("workers")
            outcome_info["coordinator_cpu_ratio"] = coordinator_cpu_ratio
            outcome_info["workers_cpu_s"] = sum(w.get("cpu_s") or 0.0 for w in outcome_info["workers"] or [])
        meta["outcome"] = outcome_info
        write_json_atomic(run_dir / "run.json", meta)
        if worker.judge is not None:
            outcome_info["judge_calls"] = worker.judge.calls
            outcome_info["judge_errors"] = worker.judge.errors
        summary = build_summary(recorder, meta, outcome_info, quality)
        add_verdicts(summary, scenario.slo, ValidityLimits(**scenario.validity.limits()), scenario.decision.objective,
                     loop_cpu_ratio, recorder, slo_confidence(outcome_info))
        write_json_atomic(run_dir / "summary.json", summary)
        write_run_reports(run_dir, summary)
        if metrics.pushgateway:
            try:
                await asyncio.to_thread(push, registry, metrics.pushgateway, run_id)
                summary["outcome"]["pushed_to"] = metrics.pushgateway
            except OSError as exc:
                sys.stderr.write(f"loadbench: could not push to {metrics.pushgateway}: {exc}\n")
                summary["outcome"]["push_error"] = str(exc)
            write_json_atomic(run_dir / "summary.json", summary)
        if server is not None:
            if metrics.linger_s > 0:
                await asyncio.sleep(metrics.linger_s)
            server.stop()
        return RunResult(run_dir, summary, outcome)
    finally:
        if pool is not None:
            await pool.close()
        await asyncio.gather(*(s.close() for s in sessions), *(t.close() for t in transports), return_exceptions=True)
        await asyncio.gather(*(stop_sim(s) for s in sims), return_exceptions=True)


async def _sent_by_workers(item_index: int, r: RequestResult, t0_ns: int) -> None:
    raise RuntimeError("with --workers, requests are sent by the worker processes")


def _abort_reason(rules: list[AbortRule], recorder: Recorder, history: list[tuple[float, dict[str, tuple[int, int, int]]]],
                  now_s: float) -> str | None:
    """Check abort rules over a sliding window of per-second counter snapshots."""
    snapshot = {name: (rec.total.sent, rec.total.error_count, rec.total.dropped) for name, rec in recorder.candidates.items()}
    history.append((now_s, snapshot))
    for rule in rules:
        past = next(((t, s) for t, s in history if now_s - t <= rule.window_s), None)
        if past is None:
            continue
        for name, (sent, errors, dropped) in snapshot.items():
            if rule.candidate and rule.candidate != name:
                continue
            sent0, errors0, dropped0 = past[1].get(name, (0, 0, 0))
            d_sent, d_err, d_drop = sent - sent0, errors - errors0, dropped - dropped0
            if rule.metric == "error_ratio" and d_sent >= rule.min_requests and d_err / d_sent > rule.above:
                return f"aborted: {name} error ratio {d_err / d_sent:.2f} > {rule.above:g} over the last {rule.window_s:g}s"
            total = d_sent + d_drop
            if rule.metric == "drop_ratio" and total >= rule.min_requests and d_drop / total > rule.above:
                return f"aborted: {name} drop ratio {d_drop / total:.2f} > {rule.above:g} over the last {rule.window_s:g}s"
    cutoff = now_s - max((r.window_s for r in rules), default=0) - 2
    while history and history[0][0] < cutoff:
        history.pop(0)
    return None


def _on_signal(runner: Runner, sig: int) -> None:
    again = runner.stopping
    runner.request_stop(f"stopped by {signal.Signals(sig).name}")
    msg = ("second signal: cancelling requests in flight now" if again
           else f"{signal.Signals(sig).name}: no new requests; waiting up to {runner.grace_ns / NS_PER_S:g}s "
                "for those in flight (signal again to stop at once)")
    sys.stderr.write(f"\nloadbench: {msg}\n")
    sys.stderr.flush()


def dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode()
