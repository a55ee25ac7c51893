"""Commands over stored runs and tools: report, rescore, review, sim, profiles, generate, calibrate, worker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from ..config.errors import ConfigError, Problem
from ..engine.outcome import (
    EXIT_INVALID_RUN,
    EXIT_OK,
)


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
        print(f"\nrebuilt from {rebuilt.records} records; rewrote {run_dir / 'summary.json'}, "
              f"{run_dir / 'report.md'} and {run_dir / 'report.html'}")
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
    from .calibrate import CalibrationFailed, recommendation_lines, run_calibration

    if not 1 <= args.seconds <= 120:
        raise ConfigError.single("--seconds", "must be between 1 and 120")
    if not 1 <= args.concurrency <= 4096:
        raise ConfigError.single("--concurrency", "must be between 1 and 4096")
    try:
        cal, path = run_calibration(args.seconds, args.concurrency, args.chunks,
                                    lambda msg: print(f"loadbench calibrate: {msg}", file=sys.stderr, flush=True))
    except CalibrationFailed as exc:
        print(f"loadbench calibrate: {exc}; nothing was saved", file=sys.stderr)
        return EXIT_INVALID_RUN
    print("\n".join(recommendation_lines(cal)))
    print(f"saved to {path}; `loadbench run` uses it to choose --workers auto and to warn before an overload")
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    from ..scale.workers import worker_main

    return asyncio.run(worker_main(args.fd))
