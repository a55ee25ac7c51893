"""The command line's arguments: one parser, a helper per group of commands."""

from __future__ import annotations

import argparse
from typing import Any

from .._version import __version__
from .probe_cmd import add_probe


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
    add_probe(sub)
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
