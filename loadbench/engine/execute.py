"""A run end to end, as four steps: start (backends, lanes), open (outputs, metrics), drive, finish.

Every resource a step opens is held by one AsyncExitStack, so every path out of a run (normal
end, an error, Ctrl-C, a second Ctrl-C) closes all of them, latest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry

from ..config.errors import ConfigError
from ..config.files import write_atomic, write_json_atomic
from ..config.server_metrics import metrics_url
from ..config.slo_clauses import parse_clauses
from ..drive.lanes import build_lanes, prewarm_lanes
from ..drive.scrape import ScrapeTarget, ServerScraper
from ..pacing.clock import Clock, MonotonicClock
from ..pacing.records import RequestResult
from ..pacing.results_log import ResultsLog
from ..pacing.runner import Lane, Plan, Runner, RunOutcome
from ..plan.resolve import NS_PER_S, Resolved, build_judge_settings, build_plan, new_run_id
from ..scale.workers import PoolBase, WorkerPool, worker_spec
from ..stats.fidelity import add_fidelity
from ..stats.hdr import HlogWriter
from ..stats.quality import QualityAggregator
from ..stats.recorder import Recorder
from ..stats.sequential import look_plan, schedule_bounds
from ..stats.server import add_server_side
from ..stats.sessions import session_aggregator
from ..stats.slo import request_check
from ..stats.summary import LiveVerdicts, add_verdicts, build_summary, slo_confidence
from ..stats.validity import ValidityLimits
from ..views.pages import write_run_reports
from ..views.progress import ProgressView
from ..views.prometheus import LoadbenchCollector, MetricsServer, RunState, push
from .paraphrase import paraphrase_items
from .scoring_thread import ScoringWorker
from .setup import preflight, run_meta
from .ticker import Ticker

PARAPHRASER = "\x00paraphraser"  # a key no candidate can have (names are [A-Za-z0-9_.-])
HANDOFF_S = 0.02  # how long finished records wait to be handed to the scoring thread as a batch
WORKER_START_MARGIN_NS = 50_000_000  # workers start this far ahead, so the "go" reaches them in time


@dataclass(slots=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    outcome: RunOutcome


class Backend(Protocol):
    """A started deployment the run talks to (a simulator process)."""

    @property
    def base_url(self) -> str: ...


class Backends(Protocol):
    """Starts and stops what `sim:` candidates and judges name: given by the run entry (CLI,
    `loadbench.run`), so the engine knows nothing of the simulator."""

    async def start(self, profile: str, dataset: Path | None, seed: int, params: dict[str, float | int] | None = None,
                    faults: dict[str, object] | None = None) -> Backend: ...

    async def stop(self, handle: Any) -> None: ...


@dataclass(slots=True)
class MetricsOptions:
    port: int | None = 9464  # None: no /metrics endpoint
    host: str = "127.0.0.1"
    pushgateway: str | None = None
    linger_s: float = 0.0  # keep serving /metrics this long after the run (for a last scrape)
    port_is_default: bool = True


@dataclass(slots=True)
class _Outputs:
    """Where a run's records go while it runs."""

    run_dir: Path
    meta: dict[str, Any]
    results_log: ResultsLog
    hlog_file: Any
    recorder: Recorder
    quality: QualityAggregator
    worker: ScoringWorker
    registry: CollectorRegistry
    run_state: RunState
    server: MetricsServer | None = None
    scraper: ServerScraper | None = None  # the deployments' own /metrics, where a candidate names them


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
    backends: Backends | None = None,
) -> RunResult:
    clock = clock or MonotonicClock()
    metrics = metrics or MetricsOptions(port=None)
    async with contextlib.AsyncExitStack() as stack:
        base_urls, judge_settings = await _start_backends(stack, resolved, backends)
        paraphrases = await paraphrase_items(resolved, base_urls.pop(PARAPHRASER, None), resolved.scenario_path)
        plan = build_plan(resolved.scenario, resolved.items, resolved.trace,
                          resolved.variants.base_of if resolved.variants is not None else None)
        pooled = workers > 1 or ray_address is not None
        warnings: list[str] = []
        lanes = await _connect(stack, resolved, base_urls, clock, pooled, warnings)
        out = _open(stack, resolved, out_root, plan, base_urls, judge_settings, metrics, quiet, progress, clock)
        _warn(out, warnings, quiet)
        if paraphrases:  # what every candidate was sent under the paraphrase variant
            write_atomic(out.run_dir / "paraphrases.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in paraphrases))
        runner, hand_over = await _make_runner(stack, resolved, plan, lanes, base_urls, out, clock, workers, ray_address)
        view = None if quiet else (progress or ProgressView())
        outcome, cpu = await _drive(resolved, plan, runner, hand_over, lanes, out, clock, view, install_signal_handlers)
        summary = await _finish(resolved, outcome, cpu, out, metrics, pooled)
        return RunResult(out.run_dir, summary, outcome)
    raise AssertionError("unreachable")  # pragma: no cover - the stack re-raises or returns


async def _start_backends(stack: contextlib.AsyncExitStack, resolved: Resolved,
                          backends: Backends | None) -> tuple[dict[str, str], Any]:
    """Simulators for `sim:` candidates and judges; every one that started is stopped on the way out."""
    scenario = resolved.scenario
    judge_cfg = scenario.scoring.judge
    wanted = [(c.sim, c.sim_params, c.sim_faults.model_dump() if c.sim_faults else None)
              for c in scenario.candidates if c.sim is not None]
    if judge_cfg is not None and judge_cfg.sim is not None:
        wanted.append((judge_cfg.sim, {}, None))
    para = scenario.fidelity.paraphrase if scenario.fidelity is not None else None
    if para is not None and para.sim is not None:
        wanted.append((para.sim, {}, None))
    started: list[Any] = []
    if wanted:
        if backends is None:
            raise ConfigError.single("candidates", "a sim: candidate or judge needs the simulator; run through the CLI or "
                                                   "loadbench.run (they provide it), or pass backends=")
        started = await asyncio.gather(*(backends.start(profile, resolved.dataset_path, scenario.load.seed, params, faults)
                                         for profile, params, faults in wanted), return_exceptions=True)
        for handle in started:
            if not isinstance(handle, BaseException):
                stack.push_async_callback(backends.stop, handle)
        failures = [s for s in started if isinstance(s, BaseException)]
        if failures:
            raise failures[0]
    sims = iter(started)
    base_urls = {c.name: next(sims).base_url if c.sim is not None else (c.base_url or "") for c in scenario.candidates}
    judge_settings = None
    if judge_cfg is not None:
        judge_base = next(sims).base_url if judge_cfg.sim is not None else (judge_cfg.base_url or "")
        judge_settings = build_judge_settings(judge_cfg, judge_base, resolved.judge_secret)
    if para is not None and para.sim is not None:
        base_urls[PARAPHRASER] = next(sims).base_url  # taken out again before the lanes are built
    return base_urls, judge_settings


async def _connect(stack: contextlib.AsyncExitStack, resolved: Resolved, base_urls: dict[str, str], clock: Clock,
                   pooled: bool, warnings: list[str]) -> list[Lane]:
    """Lanes to every candidate (with --workers: proxies, the workers send), after a preflight."""
    if pooled:
        lanes = [Lane(c.name, _sent_by_workers, c.max_in_flight) for c in resolved.scenario.candidates]
        transports: list[Any] = []
    else:
        lanes, transports = build_lanes(resolved, base_urls, clock)
        for transport in transports:
            stack.push_async_callback(transport.close)
    problems = await preflight(resolved, base_urls, warnings)
    if problems:
        raise ConfigError(problems)
    if not pooled:
        await prewarm_lanes(resolved, transports)
    return lanes


def _warn(out: _Outputs, warnings: list[str], quiet: bool) -> None:
    """What the preflight found lacking: on stderr, in run.json and (through it) in summary.json."""
    if not warnings:
        return
    out.meta["preflight_warnings"] = warnings
    write_json_atomic(out.run_dir / "run.json", out.meta)
    if not quiet:
        for warning in warnings:
            sys.stderr.write(f"loadbench: warning: {warning}\n")


def _open(stack: contextlib.AsyncExitStack, resolved: Resolved, out_root: Path, plan: Plan, base_urls: dict[str, str],
          judge_settings: Any, metrics: MetricsOptions, quiet: bool, progress: ProgressView | None,
          clock: Clock) -> _Outputs:
    """The run directory, run.json, the results log, histograms, the scoring thread and /metrics."""
    scenario = resolved.scenario
    run_id = new_run_id(scenario.name)
    run_dir = out_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    meta = run_meta(resolved, run_id, plan, base_urls)
    write_json_atomic(run_dir / "run.json", meta)
    results_log = ResultsLog(run_dir / "results.jsonl", store_text=scenario.output.store_text)
    hlog_file = open(run_dir / "histograms.hlog", "w", encoding="ascii")
    stack.callback(hlog_file.close)
    names = [c.name for c in scenario.candidates]
    recorder = Recorder(names, HlogWriter(hlog_file))
    on_time = request_check(parse_clauses(scenario.slo))
    quality = QualityAggregator(names, [item.tags for item in resolved.items], on_time, session_aggregator(meta, on_time),
                                resolved.variants.variant_of if resolved.variants is not None else None)
    worker = ScoringWorker(resolved.items, resolved.specs, results_log, quality, judge_settings, turn_specs=resolved.turn_specs)
    worker.start()
    stack.push_async_callback(asyncio.to_thread, worker.close)  # a no-op once the run closed it itself
    run_state = RunState(
        run_id=run_id, scenario=meta["scenario"], mode=scenario.load.mode, arrival=scenario.load.arrival,
        offered_rate_qps=(resolved.trace.rows / max(resolved.trace.span_s, 1e-3)) if resolved.trace else scenario.load.rate_qps,
        started_at_s=time.time(), warmup_s=scenario.load.warmup_s,
        models={c.name: c.model or (f"sim-{c.sim}" if c.sim else "") for c in scenario.candidates},
    )
    out = _Outputs(run_dir, meta, results_log, hlog_file, recorder, quality, worker,
                   CollectorRegistry(auto_describe=False), run_state)
    out.scraper = _scraper(stack, resolved, base_urls, run_dir, clock)
    if out.scraper is not None:
        run_state.server_gauges = out.scraper.latest
    _serve_metrics(stack, out, metrics, verbose=not quiet)
    return out


def _scraper(stack: contextlib.AsyncExitStack, resolved: Resolved, base_urls: dict[str, str], run_dir: Path,
             clock: Clock) -> ServerScraper | None:
    targets = [ScrapeTarget(c.name, metrics_url(c.server_metrics, base_urls[c.name]), c.server_metrics.interval_s,
                            c.server_metrics.effective_timeout_s, c.server_metrics.max_bytes, c.server_metrics.preset,
                            verify_tls=not c.insecure)
               for c in resolved.scenario.candidates if c.server_metrics is not None]
    if not targets:
        return None
    scraper = ServerScraper(targets, run_dir / "server_metrics.jsonl", clock.now_ns)
    stack.callback(scraper.close)
    return scraper


def _serve_metrics(stack: contextlib.AsyncExitStack, out: _Outputs, metrics: MetricsOptions, verbose: bool) -> None:
    if metrics.port is None:
        return
    server = MetricsServer(out.registry, metrics.host, metrics.port)
    try:
        server.start()
    except OSError as exc:
        if not metrics.port_is_default:
            raise ConfigError.single("--metrics-port", f"cannot listen on {metrics.host}:{metrics.port}: {exc.strerror}") from None
        server = MetricsServer(out.registry, metrics.host, 0)
        server.start()
    stack.callback(server.stop)
    out.server = server
    if verbose:
        sys.stderr.write(f"loadbench: metrics at http://{metrics.host}:{server.port}/metrics\n")
    out.meta["metrics_port"] = server.port
    write_json_atomic(out.run_dir / "run.json", out.meta)  # the service reads the port from here


async def _make_runner(stack: contextlib.AsyncExitStack, resolved: Resolved, plan: Plan, lanes: list[Lane],
                       base_urls: dict[str, str], out: _Outputs, clock: Clock, workers: int,
                       ray_address: str | None) -> tuple[Runner | PoolBase, Callable[[], None]]:
    """The open- or closed-loop runner, or the pool of worker processes (or Ray actors)."""
    scenario, recorder = resolved.scenario, out.recorder
    loop = asyncio.get_running_loop()
    submit_batch = out.worker.submit_batch
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

    by_name = {lane.name: lane for lane in lanes}
    out.registry.register(LoadbenchCollector(out.run_state, recorder, out.quality,
                                             lambda name: by_name[name].in_flight if name in by_name else 0))
    grace_ns = int(scenario.load.grace_s * NS_PER_S)
    if not (workers > 1 or ray_address is not None):
        runner = Runner(plan, lanes, sink, clock, on_saturation=scenario.load.on_saturation, grace_ns=grace_ns,
                        loop_lag_sink=recorder.record_loop_lag_us)
        return runner, hand_over
    pool_cls: type[PoolBase] = WorkerPool
    if ray_address is not None:
        from ..scale.ray_pool import RayPool

        pool_cls = RayPool
        out.meta["ray"] = ray_address
    pool = pool_cls(worker_spec(resolved, base_urls), workers, lanes, sink, clock, grace_ns=grace_ns,
                    loop_lag_sink=recorder.record_loop_lag_us)
    stack.push_async_callback(pool.close)
    try:
        await pool.start()
    except (RuntimeError, TimeoutError) as exc:
        raise ConfigError.single("--workers", f"the worker processes did not start: {exc}") from None
    out.meta["workers"] = workers
    return pool, hand_over


async def _drive(resolved: Resolved, plan: Plan, runner: Any, hand_over: Callable[[], None], lanes: list[Lane],
                 out: _Outputs, clock: Clock, view: ProgressView | None,
                 install_signal_handlers: bool) -> tuple[RunOutcome, dict[str, Any]]:
    """Send the schedule; on every way out, flush, close the histograms and let scoring finish."""
    scenario = resolved.scenario
    loop = asyncio.get_running_loop()
    pooled = isinstance(runner, PoolBase)
    looks = look_plan(scenario.load)
    live = LiveVerdicts(parse_clauses(scenario.slo), out.recorder, out.quality)
    out.run_state.slo = live if scenario.slo else None
    planned_s = (scenario.load.warmup_s + (schedule_bounds(scenario.load)[0] or 0)) or (
        float(plan.offsets_ns[-1]) / NS_PER_S if len(plan.offsets_ns) else None)
    ticker = Ticker(scenario, plan, runner, out.recorder, clock, out.run_state, lanes, live, looks, view, planned_s,
                    {**looks.describe(), "looks_taken": 0, "decided_at_s": None} if looks else {})
    signals: list[int] = []
    if install_signal_handlers:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal support (e.g. not the main thread)
                loop.add_signal_handler(sig, _on_signal, runner, sig)
                signals.append(sig)
    tick = loop.create_task(ticker.run())
    # Everything allocated so far lives for the whole run: keep the cyclic GC from
    # rescanning it in full collections that would stall the sending loop.
    if out.scraper is not None:  # the servers' counters before the first request
        await asyncio.to_thread(out.scraper.scrape_before)
    gc.collect()
    gc.freeze()
    t0 = clock.now_ns() + (WORKER_START_MARGIN_NS if pooled else 0)
    runner.t0_ns = t0
    if out.scraper is not None:
        out.scraper.begin(t0)
    cpu_before = time.thread_time()
    try:
        outcome = await runner.run(t0)
        loop_cpu = (time.thread_time() - cpu_before) / max((clock.now_ns() - t0) / NS_PER_S, 1e-9)
        cpu = {"loop_cpu_ratio": loop_cpu, "coordinator_cpu_ratio": None}
        if pooled:  # the pacing loops are the workers'; the coordinator only records
            cpu = {"loop_cpu_ratio": runner.loop_cpu_ratio or 0.0, "coordinator_cpu_ratio": loop_cpu}
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
        for sig in signals:
            loop.remove_signal_handler(sig)
        elapsed = (clock.now_ns() - t0) / NS_PER_S
        out.recorder.flush(elapsed)
        out.hlog_file.close()
        gc.unfreeze()
        hand_over()
        if out.scraper is not None:  # and after the last response
            await asyncio.to_thread(out.scraper.finish)
        # Scoring finishes off the loop (judge calls may still be running); wait for it.
        if out.worker.backlog and view is not None:
            sys.stderr.write(f"loadbench: scoring the last {out.worker.backlog} responses...\n")
        await asyncio.to_thread(out.worker.close)
        out.run_state.phase = "done"
        if out.worker.error is not None:
            raise out.worker.error
    ticker.show(elapsed, final=True)
    cpu["sequential"] = ticker.sequential if looks is not None else None
    cpu["slo_confidence"] = looks.per_look_confidence if looks is not None else scenario.load.confidence
    return outcome, cpu


async def _finish(resolved: Resolved, outcome: RunOutcome, cpu: dict[str, Any], out: _Outputs, metrics: MetricsOptions,
                  pooled: bool) -> dict[str, Any]:
    """run.json's outcome, summary.json with verdicts, the reports, a Pushgateway push, a last scrape."""
    scenario = resolved.scenario
    info: dict[str, Any] = {
        "stop_reason": outcome.stop_reason, "duration_s": outcome.end_ns / NS_PER_S, "planned_requests": outcome.planned,
        "dispatched_positions": outcome.dispatched, "cancelled_in_flight": outcome.cancelled_in_flight,
        "results_lines": out.results_log.lines, "loop_cpu_ratio": cpu["loop_cpu_ratio"], "slo_confidence": cpu["slo_confidence"],
    }
    if cpu["sequential"] is not None:
        info["sequential"] = cpu["sequential"]
    if out.meta.get("preflight_warnings"):
        info["preflight_warnings"] = out.meta["preflight_warnings"]
    if pooled:
        info["workers"] = outcome.extra.get("workers")
        info["coordinator_cpu_ratio"] = cpu["coordinator_cpu_ratio"]
        info["workers_cpu_s"] = sum(w.get("cpu_s") or 0.0 for w in info["workers"] or [])
    out.meta["outcome"] = info
    write_json_atomic(out.run_dir / "run.json", out.meta)
    if out.worker.judge is not None:
        info["judge_calls"] = out.worker.judge.calls
        info["judge_errors"] = out.worker.judge.errors
    summary = build_summary(out.recorder, out.meta, info, out.quality)
    add_verdicts(summary, scenario.slo, ValidityLimits(**scenario.validity.limits()), scenario.decision.objective,
                 cpu["loop_cpu_ratio"], out.recorder, slo_confidence(info))
    add_server_side(summary, out.run_dir, out.meta)
    add_fidelity(summary, out.run_dir, out.meta)
    write_json_atomic(out.run_dir / "summary.json", summary)
    write_run_reports(out.run_dir, summary)
    if metrics.pushgateway:
        try:
            await asyncio.to_thread(push, out.registry, metrics.pushgateway, out.meta["run_id"])
            summary["outcome"]["pushed_to"] = metrics.pushgateway
        except OSError as exc:
            sys.stderr.write(f"loadbench: could not push to {metrics.pushgateway}: {exc}\n")
            summary["outcome"]["push_error"] = str(exc)
        write_json_atomic(out.run_dir / "summary.json", summary)
    if out.server is not None and metrics.linger_s > 0:
        await asyncio.sleep(metrics.linger_s)
    return summary


async def _sent_by_workers(item_index: int, r: RequestResult, t0_ns: int) -> None:
    raise RuntimeError("with --workers, requests are sent by the worker processes")


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
