"""What the HTML report needs from the results log: failed items, disagreements and per-second timelines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config.dataset import Item, load_dataset
from ..config.errors import ConfigError
from ..pacing.records import RequestResult
from ..pacing.results_log import iter_results

MAX_FAILED_ROWS = 3000  # inlined in report.html; the rest stays in results.jsonl
MAX_DISAGREEMENTS = 1000
RESPONSE_CHARS = 4000  # of a response, inlined (the whole text is in results.jsonl)


@dataclass(slots=True)
class FailedRow:
    candidate: str
    item_id: str
    item_index: int
    turn: int
    verdict: str  # fail | unscored
    tags: list[str]
    scorers: list[dict[str, Any]]  # the failing and unscored scores: scorer, name, status, error_class, explanation
    expected: str
    response: str
    latency_s: float | None
    cost_usd: float

    @property
    def error_classes(self) -> list[str]:
        return sorted({s.get("error_class") or "" for s in self.scorers} - {""})

    @property
    def scorer_names(self) -> list[str]:
        return sorted({s.get("name") or s.get("scorer") or "" for s in self.scorers} - {""})


@dataclass(slots=True)
class Timeline:
    bucket_s: float
    t_s: list[float] = field(default_factory=list)
    p50_s: list[float | None] = field(default_factory=list)
    p95_s: list[float | None] = field(default_factory=list)
    p99_s: list[float | None] = field(default_factory=list)
    ok_per_s: list[float] = field(default_factory=list)
    errors_per_s: list[float] = field(default_factory=list)
    lag_p99_s: list[float | None] = field(default_factory=list)


@dataclass(slots=True)
class ReportData:
    failed: list[FailedRow]
    failed_total: int
    disagreements: list[dict[str, Any]]
    disagreements_total: int
    timelines: dict[str, Timeline]
    warmup_s: float


def _items(meta: dict[str, Any]) -> list[Item] | None:
    path = meta.get("dataset")
    if not path:
        return None
    try:
        return load_dataset(Path(path))
    except ConfigError:
        return None  # moved or changed since the run: the report goes without expected answers


def _expected(items: list[Item] | None, r: RequestResult) -> str:
    if items is None or r.item_index >= len(items):
        return "(dataset not available)"
    item = items[r.item_index]
    if r.turn and item.turns and r.turn <= len(item.turns):
        target = item.turns[r.turn - 1].target
    else:
        target = item.target
    if item.expected_tool_calls:
        calls = "; ".join(f"{c.get('name')}({c.get('arguments')})" for c in item.expected_tool_calls)
        return calls if target is None else f"{target} | {calls}"
    if target is None:
        return "(no target: judged by its scorers)"
    return " | ".join(str(t) for t in target) if isinstance(target, list) else str(target)


def _failed_row(r: RequestResult, tags: list[str], items: list[Item] | None) -> FailedRow:
    bad = [s for s in r.scores or [] if s.get("status") in ("fail", "unscored")]
    text = r.text or ""
    if r.tool_calls:
        calls = "; ".join(f"{(c.get('function') or c).get('name')}({(c.get('function') or c).get('arguments')})" for c in r.tool_calls)
        text = f"{text}\n[tool calls] {calls}" if text else f"[tool calls] {calls}"
    if len(text) > RESPONSE_CHARS:
        text = text[:RESPONSE_CHARS] + f"… ({len(r.text or '') - RESPONSE_CHARS} more characters in results.jsonl)"
    return FailedRow(r.candidate, r.item_id, r.item_index, r.turn, r.verdict or "", tags, bad, _expected(items, r), text,
                     (r.done_ns - r.intended_ns) / 1e9 if r.done_ns >= 0 else None, r.cost_usd)


def _timeline(per_bucket: dict[int, dict[str, list[float]]], bucket_s: float) -> Timeline:
    tl = Timeline(bucket_s)
    if not per_bucket:
        return tl
    for index in range(min(per_bucket), max(per_bucket) + 1):
        b = per_bucket.get(index, {})
        lat = np.asarray(b.get("lat", []), dtype=float)
        lag = np.asarray(b.get("lag", []), dtype=float)
        tl.t_s.append((index + 0.5) * bucket_s)
        # a percentile of a second with few requests says little: none below the counts the table uses
        tl.p50_s.append(float(np.percentile(lat, 50)) if lat.size >= 3 else None)
        tl.p95_s.append(float(np.percentile(lat, 95)) if lat.size >= 20 else None)
        tl.p99_s.append(float(np.percentile(lat, 99)) if lat.size >= 100 else None)
        tl.ok_per_s.append(lat.size / bucket_s)
        tl.errors_per_s.append(len(b.get("err", [])) / bucket_s)
        tl.lag_p99_s.append(float(np.percentile(lag, 99)) if lag.size >= 20 else (float(lag.max()) if lag.size else None))
    return tl


def collect(run_dir: Path, meta: dict[str, Any], summary: dict[str, Any]) -> ReportData:
    """One pass over results.jsonl."""
    items = _items(meta)
    tags_by_index: list[list[str]] = meta.get("item_tags") or []
    duration_s = float((summary.get("outcome") or {}).get("duration_s") or 0.0)
    # at most ~300 points a line, and intervals long enough that a p95 has its 20 requests at the offered rate
    rate = max((c.get("achieved_rate_qps") or 0.0) for c in (summary.get("candidates") or {}).values()) if summary.get("candidates") else 0.0
    bucket_s = float(max(1, math.ceil(duration_s / 300) if duration_s else 1, math.ceil(20 / rate) if rate > 0 else 1))
    failed: list[FailedRow] = []
    failed_total = 0
    verdicts: dict[tuple[int, int, int], dict[str, tuple[str, str]]] = {}
    item_ids: dict[int, str] = {}
    buckets: dict[str, dict[int, dict[str, list[float]]]] = {}
    path = run_dir / "results.jsonl"
    if path.exists():
        for _, r, _ in iter_results(path):
            if r is None:
                continue
            b = buckets.setdefault(r.candidate, {})
            if r.done_ns >= 0:
                slot = b.setdefault(int(r.done_ns / 1e9 // bucket_s), {})
                if r.status == "ok":
                    slot.setdefault("lat", []).append((r.done_ns - r.intended_ns) / 1e9)
                elif r.status == "error":
                    slot.setdefault("err", []).append(1.0)
            if r.sent_ns >= 0:
                b.setdefault(int(r.sent_ns / 1e9 // bucket_s), {}).setdefault("lag", []).append(max(0, r.sent_ns - r.intended_ns) / 1e9)
            if not r.in_window or r.phase == "tool" or r.verdict is None:
                continue
            if r.verdict in ("pass", "fail"):
                verdicts.setdefault((r.item_index, r.epoch, r.turn), {})[r.candidate] = (r.verdict, (r.text or "")[:600])
                item_ids[r.item_index] = r.item_id
            if r.verdict in ("fail", "unscored"):
                failed_total += 1
                if len(failed) < MAX_FAILED_ROWS:
                    tags = tags_by_index[r.item_index] if r.item_index < len(tags_by_index) else []
                    failed.append(_failed_row(r, list(tags), items))
    disagreements = []
    total = 0
    for (index, epoch, turn), by_cand in sorted(verdicts.items()):
        if len({v for v, _ in by_cand.values()}) > 1:
            total += 1
            if len(disagreements) < MAX_DISAGREEMENTS:
                disagreements.append({"item_id": item_ids.get(index, f"#{index}"), "epoch": epoch, "turn": turn,
                                      "tags": tags_by_index[index] if index < len(tags_by_index) else [],
                                      "by_candidate": {c: {"verdict": v, "response": t} for c, (v, t) in sorted(by_cand.items())}})
    warmup_s = float((summary.get("window") or {}).get("warmup_s") or 0.0)
    return ReportData(failed, failed_total, disagreements, total, {n: _timeline(b, bucket_s) for n, b in buckets.items()},
                      warmup_s)


__all__ = ["FailedRow", "ReportData", "Timeline", "collect"]
