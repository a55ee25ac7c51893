"""Commands of the service and its history: serve, history, compare."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config.errors import ConfigError
from ..engine.outcome import (
    EXIT_OK,
    EXIT_REGRESSED,
)


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..service.app import serve
    from ..service.common import ServiceConfig

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
