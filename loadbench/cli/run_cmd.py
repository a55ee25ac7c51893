"""Commands that send traffic: run, sweep, load (and what they share: worker sizing, baselines, the service policy)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from ..config.errors import ConfigError, Problem
from ..engine.outcome import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSED,
    exit_code,
)


def _enforce_service_policy(path: str | None, scenario_file: str, scenario: Any, scenario_dir: Path) -> None:
    """A run started by the service checks again what it may reach before it sends anything."""
    if not path:
        return
    import orjson

    from ..service.policy import Policy, check_scenario, scan_yaml

    policy = Policy.from_json(orjson.loads(Path(path).read_bytes()))
    try:
        scan_yaml(Path(scenario_file).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ConfigError.single(scenario_file, str(exc)) from None
    problems = check_scenario(scenario, scenario_dir, policy)
    if problems:
        raise ConfigError([Problem(scenario_file, None, "", p) for p in problems])


def _sim_backends() -> Any:
    """The simulator, for `sim:` candidates and judges (the engine is given it, it does not import it)."""
    from ..sim.process import SIM_BACKENDS

    return SIM_BACKENDS


def _cmd_run(args: argparse.Namespace) -> int:
    from ..config.scenario import load_scenario
    from ..engine.execute import dumps, execute
    from ..plan.resolve import resolve
    from ..views.text import comparison_table

    overrides = list(args.set)
    if args.rate is not None:
        overrides.append(f"load.rate_qps={args.rate}")
    if args.duration is not None:
        overrides += [f"load.duration_s={args.duration}", "load.requests=null"]
    if args.requests is not None:
        overrides += [f"load.requests={args.requests}", "load.duration_s=null"]
    scenario, scenario_dir = load_scenario(args.scenario, overrides)
    _enforce_service_policy(args.service_policy, args.scenario, scenario, scenario_dir)
    resolved = resolve(scenario, args.scenario, scenario_dir, args.candidate or None)
    # A relative output.dir is relative to where loadbench runs, like any CLI's output path.
    out_root = Path(args.out or scenario.output.dir)

    from ..engine.execute import MetricsOptions

    metrics = MetricsOptions(
        port=None if args.no_metrics else (9464 if args.metrics_port is None else args.metrics_port),
        host=args.metrics_host, pushgateway=args.pushgateway, linger_s=args.metrics_linger,
        port_is_default=args.metrics_port is None,
    )
    baseline_dir = _baseline_dir(args.baseline) if args.baseline else None
    if args.stop_with_parent:
        _stop_with_parent(args.stop_with_parent)
    started_ray = False
    if args.ray:
        started_ray = _join_ray(args.ray)
    try:
        workers = _workers(args.workers, resolved, ray=bool(args.ray))
        result = asyncio.run(execute(resolved, out_root=out_root, quiet=args.quiet, metrics=metrics, workers=workers,
                                     ray_address=args.ray, backends=_sim_backends()))
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    if args.json:
        print(dumps(result.summary))
    else:
        print()
        print(comparison_table(result.summary))
        print(f"\nrun directory: {result.run_dir}  (report.html, report.md, summary.json, results.jsonl, histograms.hlog)")
    if result.outcome.stop_reason.startswith("stopped by"):
        return EXIT_INTERRUPTED
    code = exit_code(result.summary, args.fail_on)
    if baseline_dir is not None:
        regressed = _against_baseline(baseline_dir, result.run_dir, result.summary, quiet=args.json)
        if regressed and code == EXIT_OK:
            return EXIT_REGRESSED
    return code


def _baseline_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "summary.json").is_file() or not (path / "results.jsonl").is_file():
        raise ConfigError.single("--baseline", f"{text} is not a finished run directory (summary.json and results.jsonl)")
    return path


def _against_baseline(base_dir: Path, run_dir: Path, summary: dict, quiet: bool) -> bool:
    """Compare the run with the baseline, store it in summary.json, print it; True on a regression."""
    from ..config.files import write_json_atomic
    from ..stats.regression import compare_run_dirs, comparison_lines

    result = compare_run_dirs(base_dir, run_dir, summary)
    summary["regression"] = result
    write_json_atomic(run_dir / "summary.json", summary)
    if not quiet:
        print("\n" + "\n".join(comparison_lines(result)))
    return bool(result["regressed"])


def _stop_with_parent(pid: int) -> None:
    """Service children: stop (keeping what was collected) when the service goes away."""
    import signal
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if os.getppid() != pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="loadbench-parent-watch", daemon=True).start()


def _join_ray(address: str) -> bool:
    from ..scale.ray_pool import connect

    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError.single("--ray", "Ray is not installed: pip install 'loadbench[ray]'") from None
    try:
        return connect(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError.single("--ray", f"cannot join the Ray cluster at {address}: {exc}") from None


def _workers(requested: str, resolved: Any, ray: bool = False) -> int:
    """--workers N|auto, checked; warns when the rate exceeds what the workers can send."""
    from ..scale.calibration import capacity_warning, choose_workers, load_calibration, worker_capacity_rps
    from ..scale.procenv import cpu_count

    if requested != "auto" and not (requested.isdigit() and 1 <= int(requested) <= 256):
        raise ConfigError.single("--workers", f"expected a number from 1 to 256 or auto, got {requested!r}")
    scenario = resolved.scenario
    load = scenario.load
    per_candidate = None
    if load.mode == "open":
        trace = resolved.trace
        per_candidate = (trace.rows / max(trace.span_s, 1e-3)) if trace is not None else load.rate_qps
    offered = per_candidate * len(scenario.candidates) if per_candidate else None
    calibration = load_calibration()
    stream = any(c.stream for c in scenario.candidates)
    capacity = worker_capacity_rps(calibration, stream)
    if ray:
        from ..scale.ray_pool import cluster_cpus

        cores = cluster_cpus()
        if requested == "auto":
            return cores
    else:
        cores = cpu_count()
    workers = choose_workers(requested, offered_rps=offered, capacity_rps=capacity, cores=cores)
    warning = capacity_warning(offered, workers, capacity, calibration is not None)
    if warning:
        print(f"loadbench: warning: {warning}", file=sys.stderr)
    return workers


def _cmd_load(args: argparse.Namespace) -> int:
    import orjson

    from ..engine.execute import MetricsOptions, execute
    from ..views.text import comparison_table
    from .adhoc import adhoc_scenario, contract, process_cpu_s

    if not args.base_url.startswith(("http://", "https://")):
        raise ConfigError.single("base_url", "must start with http:// or https://")
    resolved = adhoc_scenario(args.base_url.rstrip("/"), mode=args.mode, rate=args.rate, concurrency=args.concurrency,
                                 duration_s=args.duration, stream=args.stream, model=args.model, prompt_words=args.prompt_words,
                                 max_tokens=args.max_tokens, timeout_s=args.timeout, max_in_flight=args.max_in_flight,
                                 warmup_s=args.warmup, http_client=args.http_client)
    cpu0 = process_cpu_s()
    if not 1 <= args.workers <= 256:
        raise ConfigError.single("--workers", "must be between 1 and 256")
    result = asyncio.run(execute(resolved, out_root=Path(args.out), quiet=True, metrics=MetricsOptions(port=None),
                                 workers=args.workers))
    out = contract(result.summary, process_cpu_s() - cpu0 + result.summary["outcome"].get("workers_cpu_s", 0.0))
    if args.json_out:
        Path(args.json_out).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(comparison_table(result.summary))
    notice = client_bottleneck_notice(result.summary)
    if notice:
        print(notice)
    print(f"\nrun directory: {result.run_dir}")
    return EXIT_OK


# `load` is a raw benchmark and keeps its numbers whatever the client did; past these it says
# that the client itself was the bottleneck (the run's validity gates use the same measures).
LOAD_LOOP_LAG_P99_S = 0.020
LOAD_LOOP_CPU_RATIO = 0.90


def client_bottleneck_notice(summary: dict[str, Any]) -> str | None:
    """A plain note when the sending loop lagged or ran out of CPU: by how much timings may read high."""
    lag = (summary.get("client") or {}).get("event_loop_lag_s") or {}
    cpu = (summary.get("outcome") or {}).get("loop_cpu_ratio")
    parts = []
    if lag.get("p99") is not None and lag["p99"] > LOAD_LOOP_LAG_P99_S:
        parts.append(f"its event loop lagged {lag['p99'] * 1e3:.1f} ms at p99 (max {lag.get('max', 0) * 1e3:.0f} ms)")
    if cpu is not None and cpu > LOAD_LOOP_CPU_RATIO:
        parts.append(f"the sending thread used {100 * cpu:.0f}% of a core")
    if not parts:
        return None
    off = f"up to about {lag['p99'] * 1e3:.0f} ms" if lag.get("p99") else "by an unknown amount"
    return ("\nnote: the client was the bottleneck: " + " and ".join(parts) + f". Latency and TTFT above may read "
            f"{off} high at p99; use --workers N, fewer connections or a lower rate for numbers about the server.")


def _cmd_sweep(args: argparse.Namespace) -> int:
    if args.stop_with_parent:
        _stop_with_parent(args.stop_with_parent)
    from ..config.scenario import load_scenario
    from ..engine.execute import dumps
    from ..engine.sweep import SweepConfig, Sweeper, new_sweep_dir
    from ..plan.resolve import resolve
    from ..views.pages import write_sweep_reports
    from ..views.sweep_text import sweep_table

    rates = None
    if args.rates:
        try:
            rates = sorted(float(x) for x in args.rates.split(",") if x.strip())
        except ValueError:
            raise ConfigError.single("--rates", f"expected numbers separated by commas, got {args.rates!r}") from None
        if not rates or any(r <= 0 for r in rates):
            raise ConfigError.single("--rates", "rates must be positive")
    for flag, value in (("--step-duration", args.step_duration), ("--warmup", args.warmup),
                        ("--max-step-duration", args.max_step_duration), ("--time-budget", args.time_budget)):
        if value is not None and (value < 0 or (flag != "--warmup" and value == 0)):
            raise ConfigError.single(flag, "must be positive")
    if not 0 < args.tolerance < 1:
        raise ConfigError.single("--tolerance", "must be between 0 and 1 (a share of the estimate, e.g. 0.1)")
    if not 1 <= args.max_steps <= 100:
        raise ConfigError.single("--max-steps", "must be between 1 and 100")
    overrides = [*list(args.set), "load.requests=null", f"load.duration_s={args.step_duration}"]
    scenario, scenario_dir = load_scenario(args.scenario, overrides)
    _enforce_service_policy(args.service_policy, args.scenario, scenario, scenario_dir)
    resolved = resolve(scenario, args.scenario, scenario_dir, args.candidate or None)
    cfg = SweepConfig(rates=rates, step_s=args.step_duration, warmup_s=args.warmup, steps=args.steps, refine=args.refine,
                      confirm=args.confirm, calibrate_users=args.calibrate_users, peak_qps=args.peak_qps,
                      headroom=args.headroom, tasks_per_day=args.tasks_per_day, metrics_port=args.metrics_port,
                      max_step_s=args.max_step_duration, tolerance=args.tolerance, time_budget_s=args.time_budget,
                      max_steps=args.max_steps)
    sweep_dir = new_sweep_dir(Path(args.out or scenario.output.dir), scenario.name)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(f"loadbench sweep: {msg}", file=sys.stderr, flush=True))
    result = asyncio.run(Sweeper(resolved, cfg, sweep_dir, log=log, backends=_sim_backends()).run())
    write_sweep_reports(sweep_dir, result)
    if args.pushgateway:
        from ..views.prometheus import push_sweep

        try:
            push_sweep(args.pushgateway, result)
        except OSError as exc:
            print(f"loadbench: could not push to {args.pushgateway}: {exc}", file=sys.stderr)
    if args.json:
        print(dumps(result))
    else:
        print(sweep_table(result))
        print(f"\nsweep directory: {sweep_dir}  (sweep.json, report.md, report.html, steps/)")
    return EXIT_OK
