"""Command line: `loadbench run | report | sim`; exit codes; the only place uvloop is installed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config.errors import ConfigError, Problem
from ..engine.outcome import (  # noqa: F401 (exit_code is part of the CLI's surface in tests)
    EXIT_BAD_INPUT,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_INVALID_RUN,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_SLO_FAILED,
    exit_code,
)
from ..engine.process import run_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loadbench",
        description="Open-loop load and quality benchmark for OpenAI-compatible LLM deployments.",
    )
    p.add_argument("--version", action="version", version=f"loadbench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    _add_run(sub)
    _add_sweep(sub)
    _add_load(sub)
    _add_tools(sub)
    _add_service(sub)
    _add_generators(sub)
    return p


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="replay a scenario's eval set against its candidates")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument("--out", help="directory for run directories (default: the scenario's output.dir)")
    run.add_argument("--rate", type=float, help="override load.rate_qps")
    run.add_argument("--workers", default="auto", metavar="N|auto",
                     help="sending processes (default auto: enough for the offered rate by this machine's calibrated "
                          "per-worker ceiling, at most one per core; with --ray, one per CPU of the cluster)")
    run.add_argument("--baseline", metavar="RUN_DIR",
                     help="compare with this earlier run; exit 4 when a candidate regressed (accuracy, p95, goodput or cost)")
    run.add_argument("--stop-with-parent", type=int, help=argparse.SUPPRESS)
    run.add_argument("--service-policy", help=argparse.SUPPRESS)  # runs started by `loadbench serve`
    run.add_argument("--ray", metavar="auto|ADDRESS",
                     help="run the workers as Ray actors (pip install 'loadbench[ray]'): auto joins RAY_ADDRESS or a "
                          "local cluster (starting one if none runs), or give the cluster's address")
    run.add_argument("--duration", type=float, help="override load.duration_s (clears load.requests)")
    run.add_argument("--requests", type=int, help="override load.requests (clears load.duration_s)")
    run.add_argument("--candidate", action="append", default=[], metavar="NAME", help="run only this candidate (repeatable)")
    run.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override any scenario field, e.g. load.seed=7")
    run.add_argument("--quiet", action="store_true", help="no live progress lines")
    run.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    run.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                     help="serve Prometheus /metrics on this port during the run (default 9464; 0 = any free port)")
    run.add_argument("--metrics-host", default="127.0.0.1", help="address for /metrics (default 127.0.0.1)")
    run.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    run.add_argument("--metrics-linger", type=float, default=0.0, metavar="S",
                     help="keep serving /metrics S seconds after the run, for a final scrape")
    run.add_argument("--pushgateway", metavar="URL", help="push the final metrics to this Pushgateway, grouped by run_id")
    run.add_argument("--fail-on", choices=("any", "all", "none"), default="any",
                     help="exit 1 when any (default) / all / no candidate fails its SLO; "
                          "5 when none fails but a verdict is inconclusive (too few samples to decide)")



def _add_sweep(sub: Any) -> None:
    sw = sub.add_parser("sweep", help="find each candidate's highest rate that meets the SLO, and project capacity")
    sw.add_argument("--stop-with-parent", type=int, help=argparse.SUPPRESS)
    sw.add_argument("--service-policy", help=argparse.SUPPRESS)
    sw.add_argument("scenario", help="scenario YAML file (its slo: list is the bar each step must clear)")
    sw.add_argument("--rates", help="explicit ladder, e.g. 5,10,20,40 (default: calibrate, then a geometric ladder)")
    sw.add_argument("--step-duration", type=float, default=20.0, metavar="S",
                    help="measured seconds a step runs before its first look (default 20); an undecided step runs on")
    sw.add_argument("--max-step-duration", type=float, metavar="S",
                    help="cap on a step's measured seconds while its SLO verdict is undecided (default 3x --step-duration)")
    sw.add_argument("--tolerance", type=float, default=0.10,
                    help="stop when the capacity bracket is narrower than this share of the estimate (default 0.10)")
    sw.add_argument("--time-budget", type=float, default=1800.0, metavar="S", help="per candidate (default 1800)")
    sw.add_argument("--max-steps", type=int, default=12,
                    help="most steps per candidate; each step decides at 1 - 0.05/max_steps (default 12)")
    sw.add_argument("--warmup", type=float, default=5.0, metavar="S", help="warm-up seconds per step (default 5)")
    sw.add_argument("--steps", type=int, default=5, help="automatic ladder length (default 5)")
    sw.add_argument("--refine", type=int, default=6, help="most bisection steps inside the bracket (default 6)")
    sw.add_argument("--confirm", type=int, default=0,
                    help="extra repeats (fresh arrival draws) at the bracket's low end; their evidence pools (default 0)")
    sw.add_argument("--calibrate-users", type=int, default=32, help="closed-loop users for calibration (default 32)")
    sw.add_argument("--peak-qps", type=float, help="projected production peak, for the replica count")
    sw.add_argument("--headroom", type=float, default=0.3, help="capacity headroom over the peak (default 0.3)")
    sw.add_argument("--tasks-per-day", type=float, help="projected volume, for the monthly bill")
    sw.add_argument("--candidate", action="append", default=[], metavar="NAME", help="sweep only this candidate (repeatable)")
    sw.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override any scenario field")
    sw.add_argument("--out", help="directory for the sweep directory (default: the scenario's output.dir)")
    sw.add_argument("--metrics-port", type=int, metavar="PORT", help="serve /metrics for each step on this port")
    sw.add_argument("--pushgateway", metavar="URL", help="push each candidate's max sustainable rate to this Pushgateway")
    sw.add_argument("--quiet", action="store_true")
    sw.add_argument("--json", action="store_true", help="print sweep.json")



def _add_load(sub: Any) -> None:
    ld = sub.add_parser("load", help="load one endpoint without a scenario file (writes the peer-harness JSON with --json-out)")
    ld.add_argument("base_url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    ld.add_argument("--mode", choices=("open", "closed"), default="open")
    ld.add_argument("--rate", type=float, default=10.0, help="open loop: constant arrivals per second")
    ld.add_argument("--concurrency", type=int, default=8, help="closed loop: users")
    ld.add_argument("--duration", type=float, default=10.0)
    ld.add_argument("--warmup", type=float, default=0.0)
    ld.add_argument("--stream", action="store_true")
    ld.add_argument("--model", default="mock")
    ld.add_argument("--prompt-words", type=int, default=8)
    ld.add_argument("--max-tokens", type=int)
    ld.add_argument("--timeout", type=float, default=30.0)
    ld.add_argument("--max-in-flight", type=int, default=4096)
    ld.add_argument("--http-client", choices=("fast", "aiohttp"), default="fast",
                    help="fast: loadbench's lean HTTP/1.1 client (default); aiohttp: aiohttp's client")
    ld.add_argument("--json-out", help="write the result contract of shared/bench-peers here")
    ld.add_argument("--workers", type=int, default=1, help="sending processes (default 1)")
    ld.add_argument("--out", default="runs", help="where the run directory goes")



def _add_tools(sub: Any) -> None:
    rep = sub.add_parser("report", help="rebuild summary.json and the table from a run's results.jsonl")
    rep.add_argument("run_dir")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")

    sim = sub.add_parser("sim", help="serve the built-in simulated OpenAI-compatible endpoint on 127.0.0.1")
    sim.add_argument("--port", type=int, default=8800)
    sim.add_argument("--profile", default="small-fast")
    sim.add_argument("--dataset", help="eval set the simulator answers (JSONL)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sim.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    sim.add_argument("--static", action="store_true",
                     help="serve pre-rendered responses as fast as possible (to measure the client, not a model)")
    sim.add_argument("--chunks", type=int, default=200, help="--static: content events per streamed response (default 200)")
    sim.add_argument("--cpu", type=int, help="pin the simulator to this CPU")
    sim.add_argument("--params", help='JSON object overriding profile numbers, e.g. \'{"slots": 4}\'')
    sim.add_argument("--faults", help='JSON fault injection, e.g. \'{"http_5xx": 0.05, "reset": {"rate": 0.5, "start_s": 10, "end_s": 20}}\'')

    resc = sub.add_parser("rescore", help="score a run's stored responses again (no request is sent to a candidate)")
    resc.add_argument("run_dir")
    resc.add_argument("--scenario", help="scenario with the scorers and judge to use (default: the run's own)")
    resc.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a scenario field")
    resc.add_argument("--json", action="store_true", help="print the summary as JSON")

    review = sub.add_parser("review", help="human review of a run's verdicts")
    review_sub = review.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    rexp = review_sub.add_parser("export", help="write a stratified sample to label (review.csv, review.jsonl)")
    rexp.add_argument("run_dir")
    rexp.add_argument("--n", type=int, default=100, help="how many responses to sample (default 100)")
    rexp.add_argument("--salt", default="loadbench", help="change it to draw a different (still deterministic) sample")
    rimp = review_sub.add_parser("import", help="read human labels; report agreement, kappa and corrected accuracy")
    rimp.add_argument("run_dir")
    rimp.add_argument("file", help="review.csv or review.jsonl with the human_label column filled (pass/fail)")

    sub.add_parser("profiles", help="list the simulator profiles")


def _add_service(sub: Any) -> None:
    srv = sub.add_parser("serve", help="run the benchmarking service: HTTP API, queue, schedules, history, regressions")
    srv.add_argument("--data-dir", default="loadbench-data", help="history database and run directories (default ./loadbench-data)")
    srv.add_argument("--scenarios", default="scenarios", help="the directory scenario names refer to (default ./scenarios)")
    srv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8080)
    srv.add_argument("--max-concurrent", type=int, default=1, help="runs at the same time (default 1)")
    srv.add_argument("--token-env", default="LOADBENCH_TOKEN", help="environment variable with the API bearer token")
    srv.add_argument("--read-token-env", metavar="VAR", help="environment variable with a read-only token (reads, not submissions)")
    srv.add_argument("--allow-key", action="append", default=[], metavar="KEY_ENV=HOST[:PORT][,HOST...]",
                     help="let runs use this API key variable, sent only to these hosts (repeatable; none by default)")
    srv.add_argument("--allow-host", action="append", default=[], metavar="HOST[:PORT]",
                     help="a host runs may send requests to, besides loopback (repeatable)")
    srv.add_argument("--allow-scorer-module", action="append", default=[], metavar="MODULE",
                     help="custom scorers (code) may come from this module or its submodules (repeatable; none by default)")
    srv.add_argument("--allow-host-header", action="append", default=[], metavar="NAME",
                     help="a Host header name the service answers to besides loopback and --host (e.g. its DNS name)")
    srv.add_argument("--open-metrics", action="store_true", help="serve /metrics without a token (for a Prometheus that sends none)")
    srv.add_argument("--max-queue", type=int, default=100, help="queued runs at most; more get 429 (default 100)")
    srv.add_argument("--max-schedules", type=int, default=20, help="schedules at most (default 20)")
    srv.add_argument("--min-schedule-interval", type=float, default=300.0, metavar="S",
                     help="a schedule fires at most once per S seconds (default 300)")
    srv.add_argument("--max-streams", type=int, default=8, help="open event streams at most (default 8)")
    srv.add_argument("--max-rate-qps", type=float, default=2000.0, help="highest load.rate_qps a submission may ask (default 2000)")
    srv.add_argument("--max-duration", type=float, default=21600.0, metavar="S", help="longest run or step (default 21600)")
    srv.add_argument("--max-requests", type=int, default=2_000_000, help="most requests one run may plan (default 2,000,000)")
    srv.add_argument("--keep-runs", type=int, default=1000, help="finished runs kept (default 1000; baselines always kept)")
    srv.add_argument("--keep-days", type=float, default=30.0, help="finished runs older than this are deleted (default 30)")
    srv.add_argument("--child-memory-mb", type=int, default=4096, help="address-space limit of each run (default 4096; 0: none)")
    hist = sub.add_parser("history", help="list the runs the service keeps")
    hist.add_argument("--data-dir", default="loadbench-data")
    hist.add_argument("--scenario")
    hist.add_argument("--status")
    hist.add_argument("--limit", type=int, default=30)
    hist.add_argument("--json", action="store_true")
    cmp_ = sub.add_parser("compare", help="compare two runs candidate by candidate (paired where the requests match)")
    cmp_.add_argument("base", help="the earlier run: a run directory, or a run id of the service's history")
    cmp_.add_argument("new", help="the later run: a run directory or a run id")
    cmp_.add_argument("--data-dir", default="loadbench-data", help="where run ids are looked up")
    cmp_.add_argument("--json", action="store_true")


def _add_generators(sub: Any) -> None:
    cal = sub.add_parser("calibrate", help="measure this machine's per-worker ceiling (used by --workers auto and to warn)")
    cal.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (default 5)")
    cal.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    cal.add_argument("--chunks", type=int, default=200, help="SSE events per streamed response (default 200)")
    gen = sub.add_parser("generate", help="write generated eval sets (long-context needle items)")
    gen_sub = gen.add_subparsers(dest="kind", metavar="KIND", required=True)
    gn = gen_sub.add_parser("needle", help="needle-in-a-haystack questions at chosen context lengths and depths")
    gn.add_argument("--lengths", default="1k,4k,16k", help="context lengths in tokens, comma separated (default 1k,4k,16k)")
    gn.add_argument("--depths", default="0,0.25,0.5,0.75,1", help="needle depths from 0 (start) to 1 (end)")
    gn.add_argument("--per-cell", type=int, default=4, help="items per (length, depth) cell (default 4)")
    gn.add_argument("--seed", type=int, default=0)
    gn.add_argument("-o", "--out", required=True, help="the JSONL file to write")


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
    from ..config.files import read_json, write_json_atomic
    from ..pacing.results_log import iter_results
    from ..stats.regression import compare_runs, comparison_lines

    base_summary = read_json(base_dir / "summary.json")
    result = compare_runs(base_summary, summary, (r for _, r, _ in iter_results(base_dir / "results.jsonl") if r),
                          (r for _, r, _ in iter_results(run_dir / "results.jsonl") if r))
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..service.app import ServiceConfig, serve

    if not 1 <= args.max_concurrent <= 64:
        raise ConfigError.single("--max-concurrent", "must be between 1 and 64")
    from ..service.policy import parse_grant

    grants: dict[str, tuple[str, ...]] = {}
    for text in args.allow_key:
        try:
            name, hosts = parse_grant(text)
        except ValueError as exc:
            raise ConfigError.single("--allow-key", str(exc)) from None
        grants[name] = hosts
    for flag, value, low in (("--max-queue", args.max_queue, 1), ("--max-schedules", args.max_schedules, 0),
                             ("--max-streams", args.max_streams, 1), ("--keep-runs", args.keep_runs, 1),
                             ("--max-requests", args.max_requests, 1), ("--child-memory-mb", args.child_memory_mb, 0)):
        if value < low:
            raise ConfigError.single(flag, f"must be at least {low}")
    serve(ServiceConfig(data_dir=Path(args.data_dir), scenarios_dir=Path(args.scenarios), host=args.host, port=args.port,
                        max_concurrent=args.max_concurrent, token_env=args.token_env, read_token_env=args.read_token_env,
                        open_metrics=args.open_metrics, allow_hosts=tuple(h.lower() for h in args.allow_host),
                        key_grants=grants, scorer_modules=tuple(args.allow_scorer_module),
                        host_headers=tuple(args.allow_host_header), max_queue=args.max_queue,
                        max_schedules=args.max_schedules, min_schedule_interval_s=args.min_schedule_interval,
                        max_streams=args.max_streams, max_rate_qps=args.max_rate_qps, max_duration_s=args.max_duration,
                        max_requests=args.max_requests, keep_runs=args.keep_runs, keep_days=args.keep_days,
                        child_memory_mb=args.child_memory_mb))
    return EXIT_OK


def _open_history(data_dir: str) -> Any:
    from ..service.history import History

    path = Path(data_dir) / "loadbench.db"
    if not path.exists():
        raise ConfigError.single("--data-dir", f"no history at {path} (run `loadbench serve --data-dir {data_dir}` first)")
    return History(path)


def _cmd_history(args: argparse.Namespace) -> int:
    from ..engine.execute import dumps

    history = _open_history(args.data_dir)
    rows = history.list_runs(status=args.status, scenario=args.scenario, limit=args.limit)
    if args.json:
        print(dumps(rows))
        return EXIT_OK
    print(f"{'run':<24} {'scenario':<22} {'kind':<6} {'status':<12} {'created (UTC)':<20} verdicts")
    import time

    for r in rows:
        cands = ((r.get("summary") or {}).get("candidates") or {})
        words = {"pass": "ok", "fail": "FAIL", "inconclusive": "inconclusive"}
        verdicts = ", ".join(f"{n}: {words.get(c.get('slo_verdict') or ('pass' if c.get('slo_ok') else 'fail' if c.get('slo_ok') is False else ''), '-')}"
                             for n, c in cands.items())
        reg = (r.get("regression") or {}).get("regressed")
        if reg:
            verdicts += f"  REGRESSED: {', '.join(reg)}"
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["created_at"]))
        print(f"{r['id']:<24} {r['scenario'][:22]:<22} {r['kind']:<6} {r['status']:<12} {created:<20} {verdicts or '-'}")
    return EXIT_OK


def _run_dir_of(ref: str, data_dir: str) -> Path:
    path = Path(ref)
    if (path / "summary.json").is_file():
        return path
    history_file = Path(data_dir) / "loadbench.db"
    if history_file.exists():
        row = _open_history(data_dir).get_run(ref)
        if row and row.get("run_dir") and (Path(row["run_dir"]) / "summary.json").is_file():
            return Path(row["run_dir"])
    raise ConfigError.single(ref, "neither a run directory with summary.json nor a finished run id in the history")


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..config.files import read_json
    from ..engine.execute import dumps
    from ..pacing.results_log import iter_results
    from ..stats.regression import compare_runs, comparison_lines

    base, new = _run_dir_of(args.base, args.data_dir), _run_dir_of(args.new, args.data_dir)
    result = compare_runs(read_json(base / "summary.json"), read_json(new / "summary.json"),
                          (r for _, r, _ in iter_results(base / "results.jsonl") if r),
                          (r for _, r, _ in iter_results(new / "results.jsonl") if r))
    print(dumps(result) if args.json else "\n".join(comparison_lines(result)))
    return EXIT_REGRESSED if result["regressed"] else EXIT_OK


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


def _cmd_report(args: argparse.Namespace) -> int:
    from ..config.files import write_json_atomic
    from ..engine.execute import dumps
    from ..stats.rebuild import rebuild_summary
    from ..views.pages import write_run_reports
    from ..views.text import comparison_table

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError.single(args.run_dir, "not a directory")
    rebuilt = rebuild_summary(run_dir)
    for line, problem in rebuilt.skipped:
        print(f"{run_dir / 'results.jsonl'}:{line}: skipped: {problem}", file=sys.stderr)
    write_json_atomic(run_dir / "summary.json", rebuilt.summary)
    write_run_reports(run_dir, rebuilt.summary)
    if args.json:
        print(dumps(rebuilt.summary))
    else:
        print(comparison_table(rebuilt.summary))
        print(f"\nrebuilt from {rebuilt.records} records; wrote {run_dir / 'summary.json'}")
    return EXIT_OK


def _cmd_sim(args: argparse.Namespace) -> int:
    from ..config.profiles import PROFILES
    from ..sim.server import serve

    if args.cpu is not None:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except (OSError, AttributeError) as exc:
            raise ConfigError.single("--cpu", f"cannot pin to CPU {args.cpu}: {exc}") from None
    if args.static:
        from ..scale.static_server import serve_static

        if not 0 <= args.chunks <= 100_000:
            raise ConfigError.single("--chunks", "must be between 0 and 100000")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_static(args.port, args.chunks, args.host, args.parent_pid))
        return EXIT_OK

    if args.profile not in PROFILES:
        raise ConfigError.single("--profile", f"unknown profile {args.profile!r}; known: {', '.join(PROFILES)}")
    dataset = Path(args.dataset) if args.dataset else None
    params = None
    if args.params:
        import orjson

        from ..config.profiles import PROFILES as _P
        from ..config.profiles import with_params

        try:
            params = orjson.loads(args.params)
            with_params(_P[args.profile], params)
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise ConfigError.single("--params", str(exc)) from None
    faults = None
    if args.faults:
        import orjson
        from pydantic import ValidationError

        from ..config.faults import FaultSpec

        try:
            faults = orjson.loads(args.faults)
            FaultSpec.model_validate(faults)
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise ConfigError.single("--faults", str(exc).splitlines()[0]) from None
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a user stops the simulator
        asyncio.run(serve(args.profile, args.port, dataset, args.seed, args.host, args.parent_pid, params, faults))
    return EXIT_OK


def _cmd_profiles(_args: argparse.Namespace) -> int:
    from ..config.profiles import PROFILES

    for p in PROFILES.values():
        print(f"{p.name:<16} slots={p.slots:<6} accuracy={p.accuracy:.2f}  ${p.input_per_mtok}/{p.output_per_mtok} per Mtok  {p.description}")
    return EXIT_OK


def _cmd_rescore(args: argparse.Namespace) -> int:
    from ..engine.execute import dumps
    from ..views.text import comparison_table
    from .rescore import rescore_run

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError.single(args.run_dir, "not a directory")
    result = asyncio.run(rescore_run(run_dir, args.scenario, args.set))
    if args.json:
        print(dumps(result.rebuilt.summary))
    else:
        print(comparison_table(result.rebuilt.summary))
        print(f"\nrescored {result.records} records ({result.changed} changed); wrote results.jsonl and summary.json"
              + (f"; the original log is kept as {result.backup.name}" if result.backup else ""))
    return EXIT_OK


def _cmd_review(args: argparse.Namespace) -> int:
    from ..engine.execute import dumps
    from ..stats.review import export_sample, import_labels

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError.single(args.run_dir, "not a directory")
    if args.review_command == "export":
        exported = export_sample(run_dir, args.n, args.salt)
        print(f"sampled {exported.count} responses from {len(exported.strata)} strata (candidate x verdict x tag)")
        for path in exported.files:
            print(f"  {path}")
        print("fill human_label with pass or fail in review.csv (or review.jsonl), then: "
              f"loadbench review import {run_dir} {run_dir / 'review.csv'}")
        return EXIT_OK
    report = import_labels(run_dir, Path(args.file))
    print(dumps(report))
    return EXIT_OK


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
    return EXIT_OK


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


def _cmd_generate(args: argparse.Namespace) -> int:
    import orjson

    from ..config.needle import needle_items, parse_length

    problems = []
    lengths: list[int] = []
    depths: list[float] = []
    for part in args.lengths.split(","):
        try:
            lengths.append(parse_length(part))
        except ValueError as exc:
            problems.append(Problem("--lengths", None, "", str(exc)))
    for part in args.depths.split(","):
        try:
            depth = float(part)
            if not 0.0 <= depth <= 1.0:
                raise ValueError
            depths.append(depth)
        except ValueError:
            problems.append(Problem("--depths", None, "", f"not a depth between 0 and 1: {part!r}"))
    if not 1 <= args.per_cell <= 1000:
        problems.append(Problem("--per-cell", None, "", "must be between 1 and 1000"))
    if problems:
        raise ConfigError(problems)
    items = needle_items(lengths, depths, args.per_cell, args.seed)
    out = Path(args.out)
    try:
        with open(out, "wb") as f:
            for item in items:
                f.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE))
    except OSError as exc:
        raise ConfigError.single(str(out), f"cannot write: {exc.strerror}") from None
    print(f"wrote {len(items)} needle items ({len(lengths)} lengths x {len(depths)} depths x {args.per_cell}) to {out}")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import recommendation_lines, run_calibration

    if not 1 <= args.seconds <= 120:
        raise ConfigError.single("--seconds", "must be between 1 and 120")
    if not 1 <= args.concurrency <= 4096:
        raise ConfigError.single("--concurrency", "must be between 1 and 4096")
    cal, path = run_calibration(args.seconds, args.concurrency, args.chunks,
                                lambda msg: print(f"loadbench calibrate: {msg}", file=sys.stderr, flush=True))
    print("\n".join(recommendation_lines(cal)))
    print(f"saved to {path}; `loadbench run` uses it to choose --workers auto and to warn before an overload")
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from ..scale.workers import worker_main

    return asyncio.run(worker_main(args.fd))


COMMANDS = {"serve": _cmd_serve, "history": _cmd_history, "compare": _cmd_compare, "calibrate": _cmd_calibrate, "generate": _cmd_generate, "load": _cmd_load, "sweep": _cmd_sweep, "run": _cmd_run, "report": _cmd_report, "sim": _cmd_sim, "profiles": _cmd_profiles,
            "rescore": _cmd_rescore, "review": _cmd_review}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:  # a worker process of --workers (internal, not in --help)
        worker = argparse.ArgumentParser(prog="loadbench worker")
        worker.add_argument("--fd", type=int, required=True)
        with run_settings():
            return _cmd_worker(worker.parse_args(argv[1:]))
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with run_settings():  # uvloop and the switch interval, in this one place for every command
            return COMMANDS[args.command](args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\nloadbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # an unexpected failure: a short message, the traceback only on request
        if args.debug:
            traceback.print_exc()
        else:
            print(f"loadbench: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 70
