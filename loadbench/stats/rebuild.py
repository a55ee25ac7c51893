"""Rebuilds a run's summary from its results log alone (after a crash, or to re-cut it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.errors import ConfigError
from ..config.files import read_json
from ..config.slo_clauses import parse_clauses
from ..pacing.results_log import iter_results
from .fidelity import add_fidelity
from .quality import QualityAggregator
from .recorder import Recorder
from .server import add_server_side
from .sessions import session_aggregator
from .slo import request_check
from .summary import add_verdicts, build_summary, slo_confidence
from .validity import ValidityLimits


@dataclass(slots=True)
class Rebuilt:
    summary: dict[str, Any]
    records: int
    skipped: list[tuple[int, str]]  # (line, problem)


def rebuild_summary(run_dir: Path) -> Rebuilt:
    log = run_dir / "results.jsonl"
    if not log.exists():
        raise ConfigError.single(str(run_dir), "no results.jsonl in this directory (is it a loadbench run?)")
    meta_path = run_dir / "run.json"
    meta: dict[str, Any] = read_json(meta_path) if meta_path.exists() else {}
    names = list((meta.get("candidates") or {}).keys())
    recorder = Recorder(names)
    slo_texts = meta.get("slo") or []
    on_time = request_check(parse_clauses(slo_texts))
    quality = QualityAggregator(names, meta.get("item_tags") or [], on_time, session_aggregator(meta, on_time),
                                (meta.get("fidelity") or {}).get("item_variants"))
    skipped: list[tuple[int, str]] = []
    n = 0
    for lineno, record, problem in iter_results(log):
        if record is None:
            skipped.append((lineno, problem or "unreadable"))
            continue
        if record.candidate not in recorder.candidates:
            recorder.candidates[record.candidate] = Recorder([record.candidate]).candidates[record.candidate]
        recorder(record)
        quality.add(record)
        n += 1
        if n % 50_000 == 0:
            recorder.flush()
    recorder.flush()
    outcome = dict(meta.get("outcome") or {"stop_reason": "unknown (rebuilt from the results log; the run did not finish)"})
    outcome["rebuilt_from_log"] = True
    outcome["results_lines"] = n
    if skipped:
        outcome["skipped_lines"] = [{"line": line, "problem": p} for line, p in skipped]
    summary = build_summary(recorder, meta, outcome, quality)
    add_verdicts(summary, slo_texts, ValidityLimits(**(meta.get("validity") or {})),
                 (meta.get("decision") or {}).get("objective", "cost_per_correct"), outcome.get("loop_cpu_ratio"),
                 recorder, slo_confidence(outcome))
    add_server_side(summary, run_dir, meta)
    add_fidelity(summary, run_dir, meta)
    return Rebuilt(summary, n, skipped)
