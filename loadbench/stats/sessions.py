"""Session views: per-turn and per-step results, whole sessions and agentic tasks (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from ..pacing.records import OK, RequestResult
from ..scoring.scores import FAIL, PASS
from .hdr import HIGHEST_US, new_histogram, summarize
from .proportions import wilson

MAX_INDEX = 16  # turns / steps at or beyond this share one row ("16+")


def _record_us(hist: HdrHistogram, ns: int) -> None:
    if ns >= 0:
        hist.record_value(min(max(ns // 1000, 1), HIGHEST_US))


@dataclass(slots=True)
class _Position:
    """Requests at one turn (or step) index."""

    requests: int = 0
    ok: int = 0
    passes: int = 0
    fails: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    latency: HdrHistogram = field(default_factory=new_histogram)
    ttft: HdrHistogram = field(default_factory=new_histogram)

    def add(self, r: RequestResult) -> None:
        self.requests += 1
        if r.status == OK:
            self.ok += 1
            self.input_tokens += r.input_tokens
            self.cached_tokens += r.cached_tokens
            _record_us(self.latency, r.latency_ns)
            _record_us(self.ttft, r.ttft_ns)
        self.passes += r.verdict == PASS
        self.fails += r.verdict == FAIL

    def view(self) -> dict[str, Any]:
        acc, low, high = wilson(self.passes, self.passes + self.fails)
        return {
            "requests": self.requests, "ok": self.ok,
            "accuracy": acc, "accuracy_ci": [low, high], "pass": self.passes, "fail": self.fails,
            "input_tokens_mean": self.input_tokens / self.ok if self.ok else None,
            "cached_tokens_mean": self.cached_tokens / self.ok if self.ok else None,
            "latency_s": summarize(self.latency), "ttft_s": summarize(self.ttft),
        }


@dataclass(slots=True)
class _Open:
    first_intended_ns: int
    agentic: bool
    cost_usd: float = 0.0
    requests: int = 0
    ok: bool = True
    all_pass: bool = True
    scored: bool = False
    on_time: bool = True
    steps: int = 0
    calls: int = 0
    retries: int = 0
    stopped: bool = True
    expected: int = 0  # requests in the session, known once its last record arrived
    end_ns: int = -1


@dataclass(slots=True)
class _Totals:
    sessions: int = 0
    completed: int = 0  # every request succeeded
    passed: int = 0
    failed: int = 0
    good: int = 0  # passed and every request on time
    requests: int = 0
    cost_usd: float = 0.0
    duration: HdrHistogram = field(default_factory=new_histogram)
    # agentic tasks only
    steps: int = 0
    calls: int = 0
    retries: int = 0
    stopped: int = 0
    max_steps_hit: int = 0

    def add(self, s: _Open) -> None:
        end_ns = s.end_ns
        self.sessions += 1
        self.requests += s.requests
        self.cost_usd += s.cost_usd
        self.completed += s.ok
        if s.ok and s.scored:
            self.passed += s.all_pass
            self.failed += not s.all_pass
        self.good += s.ok and s.all_pass and s.on_time
        if end_ns >= 0:
            _record_us(self.duration, end_ns - s.first_intended_ns)
        self.steps += s.steps
        self.calls += s.calls
        self.retries += s.retries
        self.stopped += s.stopped
        self.max_steps_hit += not s.stopped

    def view(self, span_s: float | None, agentic: bool) -> dict[str, Any]:
        rate, low, high = wilson(self.passed, self.passed + self.failed)
        out: dict[str, Any] = {
            "sessions": self.sessions, "completed": self.completed, "passed": self.passed, "failed": self.failed,
            "pass_rate": rate, "pass_rate_ci": [low, high],
            "requests_per_session": self.requests / self.sessions if self.sessions else None,
            "sessions_per_s": self.sessions / span_s if span_s else None,
            "goodput_per_s": self.good / span_s if span_s else None,
            "good": self.good,
            "cost_per_session_usd": self.cost_usd / self.sessions if self.sessions else None,
            "duration_s": summarize(self.duration),
        }
        if agentic:
            n = self.sessions or 1
            out.update({
                "steps_mean": self.steps / n, "tool_calls_mean": self.calls / n,
                "retry_rate": self.retries / self.calls if self.calls else 0.0,
                "stopped_by_itself": self.stopped / n if self.sessions else None,
                "max_steps_hit": self.max_steps_hit,
            })
        return out


@dataclass(slots=True)
class CandidateSessions:
    by_turn: dict[int, _Position] = field(default_factory=dict)
    by_step: dict[int, _Position] = field(default_factory=dict)  # agentic items: request index in the task
    conversations: _Totals = field(default_factory=_Totals)  # multi-turn sessions
    tasks: _Totals = field(default_factory=_Totals)  # agentic tool loops
    open: dict[int, _Open] = field(default_factory=dict)


class SessionAggregator:
    """Fed every scored record of session items.  Records of a session may arrive out of order
    (a judged turn finishes scoring after the next turn): a session is closed once all of its
    requests, counted by the last record's step, have been seen."""

    def __init__(self, agentic_items: set[int], session_items: set[int],
                 on_time: Callable[[RequestResult], bool] | None = None, multi_turn_items: set[int] | None = None) -> None:
        self._agentic = agentic_items
        self._sessions = session_items
        self._multi_turn = session_items - agentic_items if multi_turn_items is None else multi_turn_items
        self._on_time = on_time
        self.candidates: dict[str, CandidateSessions] = {}

    def wants(self, r: RequestResult) -> bool:
        return r.item_index in self._sessions

    def add(self, r: RequestResult) -> None:
        if r.item_index not in self._sessions or not r.in_window:
            return
        c = self.candidates.setdefault(r.candidate, CandidateSessions())
        agentic = r.item_index in self._agentic
        s = c.open.get(r.seq)
        if s is None:
            s = c.open[r.seq] = _Open(r.intended_ns, agentic)
        s.requests += 1
        s.first_intended_ns = min(s.first_intended_ns, r.intended_ns)
        s.end_ns = max(s.end_ns, r.done_ns)
        s.cost_usd += r.cost_usd
        s.ok = s.ok and r.status == OK
        if r.verdict in (PASS, FAIL):
            s.scored = True
            s.all_pass = s.all_pass and r.verdict == PASS
        if self._on_time is not None and r.status == OK:
            s.on_time = s.on_time and self._on_time(r)
        if r.phase == "answer" and r.item_index in self._multi_turn:
            c.by_turn.setdefault(min(r.turn, MAX_INDEX), _Position()).add(r)
        if agentic:
            c.by_step.setdefault(min(r.step, MAX_INDEX), _Position()).add(r)
        if r.trajectory is not None:
            s.steps += int(r.trajectory.get("steps") or 0)
            s.calls += len(r.trajectory.get("calls") or ())
            s.retries += int(r.trajectory.get("retries") or 0)
            s.stopped = s.stopped and bool(r.trajectory.get("stopped"))
        if r.last:
            s.expected = r.step + 1
        if s.expected and s.requests >= s.expected:
            del c.open[r.seq]
            (c.tasks if agentic else c.conversations).add(s)

    def candidate_summary(self, name: str, span_s: float | None) -> dict[str, Any] | None:
        c = self.candidates.get(name)
        if c is None:
            return None
        out: dict[str, Any] = {"unfinished": len(c.open)}
        if c.by_turn:
            out["by_turn"] = {_label(k): p.view() for k, p in sorted(c.by_turn.items())}
        if c.conversations.sessions:
            out["sessions"] = c.conversations.view(span_s, agentic=False)
        if c.tasks.sessions:
            out["tasks"] = c.tasks.view(span_s, agentic=True)
            out["by_step"] = {_label(k): p.view() for k, p in sorted(c.by_step.items())}
        return out


def _label(index: int) -> str:
    return f"{index + 1}+" if index >= MAX_INDEX else str(index + 1)


def session_aggregator(meta: dict[str, Any], on_time: Callable[[RequestResult], bool] | None) -> SessionAggregator | None:
    """The aggregator for a run whose run.json lists session items; None when it has none."""
    sessions = set(meta.get("session_items") or ())
    if not sessions:
        return None
    multi = meta.get("multi_turn_items")
    return SessionAggregator(set(meta.get("agentic_items") or ()), sessions, on_time,
                             set(multi) if multi is not None else None)
