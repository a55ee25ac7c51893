"""Quality aggregation over scored records: accuracy with intervals, scorers, tags, pairs, pass@k."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..pacing.records import OK, RequestResult
from ..scoring.scores import FAIL, PASS, SKIPPED, UNSCORED
from .proportions import paired_difference, pass_at_k, pass_hat_k, wilson
from .sessions import SessionAggregator

_CODE = {PASS: 1, FAIL: 2, UNSCORED: 3, SKIPPED: 4}
# A session's verdict over its turns: the worst of them in this order (pass only if all pass).
_WORST = {0: 0, 1: 1, 3: 2, 2: 3, 4: 4}
LENGTH_BUCKETS = ((1_000, "<1k"), (4_000, "1k-4k"), (16_000, "4k-16k"), (64_000, "16k-64k"))


def length_bucket(prompt_tokens: int) -> str:
    for limit, label in LENGTH_BUCKETS:
        if prompt_tokens < limit:
            return f"input:{label}"
    return "input:64k+"


@dataclass(slots=True)
class _Tally:
    """Counts of pass / fail / unscored / skipped."""

    pass_: int = 0
    fail: int = 0
    unscored: int = 0
    skipped: int = 0

    def count(self, verdict: str | None) -> None:
        if verdict == PASS:
            self.pass_ += 1
        elif verdict == FAIL:
            self.fail += 1
        elif verdict == UNSCORED:
            self.unscored += 1
        else:
            self.skipped += 1


@dataclass(slots=True)
class _Group(_Tally):
    latency_sum_s: float = 0.0
    latency_n: int = 0

    def add(self, verdict: str, latency_s: float | None) -> None:
        self.count(verdict)
        if latency_s is not None:
            self.latency_sum_s += latency_s
            self.latency_n += 1

    def accuracy(self) -> dict[str, Any]:
        completed = self.pass_ + self.fail
        attempted = completed + self.skipped
        value, low, high = wilson(self.pass_, completed)
        att, att_low, att_high = wilson(self.pass_, attempted)
        return {
            "value": value, "ci_low": low, "ci_high": high,
            "attempted_value": att, "attempted_ci_low": att_low, "attempted_ci_high": att_high,
            "pass": self.pass_, "fail": self.fail, "unscored": self.unscored, "skipped": self.skipped,
            "n": completed,
        }


@dataclass(slots=True)
class _ScorerStats(_Tally):
    error_classes: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0


@dataclass(slots=True)
class CandidateQuality:
    overall: _Group = field(default_factory=_Group)
    by_tag: dict[str, _Group] = field(default_factory=dict)
    scorers: dict[str, _ScorerStats] = field(default_factory=dict)
    verdict_by_seq: bytearray = field(default_factory=bytearray)
    attempts: dict[int, list[int]] = field(default_factory=dict)  # item index -> [n, passes]
    judge_cost_usd: float = 0.0
    error_classes: dict[str, int] = field(default_factory=dict)
    good: int = 0  # on time (every latency SLO) and correct
    attempted: int = 0  # every scheduled request of the window, failures and drops included
    good_total: int = 0  # the same count over the whole run, for the live view
    by_variant: dict[str, _Tally] = field(default_factory=dict)  # fidelity variants: every variant's verdicts


class QualityAggregator:
    """Fed every record (from any thread that owns it); counts only the measurement window."""

    def __init__(self, candidates: list[str], item_tags: list[list[str]],
                 on_time: Callable[[RequestResult], bool] | None = None,
                 sessions: SessionAggregator | None = None, item_variants: list[str] | None = None) -> None:
        self.candidates = {name: CandidateQuality() for name in candidates}
        self._tags = item_tags
        # With fidelity variants, the headline numbers (accuracy, tags, goodput, comparisons) are of the
        # items as written; the other variants are counted per variant and summarised apart.
        self._variants = item_variants
        self._on_time = on_time
        self.sessions = sessions
        # Held while adding and while a metrics scrape (another thread) takes a snapshot.
        self.lock = threading.Lock()

    def add(self, r: RequestResult) -> None:
        with self.lock:
            self._add(r)

    def _add(self, r: RequestResult) -> None:
        if self.sessions is not None:
            self.sessions.add(r)
        if r.phase == "tool":  # a step inside an agentic task: the task's answer record counts
            return
        q = self.candidates.setdefault(r.candidate, CandidateQuality())
        if self._variants is not None and r.item_index < len(self._variants):
            variant = self._variants[r.item_index]
            if r.in_window and r.verdict is not None:
                q.by_variant.setdefault(variant, _Tally()).count(r.verdict)
            if variant != "original":
                return
        # Goodput: on time by every latency SLO and correct (a request without scorers counts
        # when on time; an unscored or skipped one never does).
        good = r.status == OK and r.verdict in (PASS, None) and (self._on_time is None or self._on_time(r))
        q.good_total += good
        if not r.in_window:
            return
        q.attempted += 1
        q.good += good
        verdict = r.verdict
        if verdict is None:  # the item has no scorers
            return
        latency = (r.done_ns - r.intended_ns) / 1e9 if verdict in (PASS, FAIL) and r.done_ns >= 0 else None
        q.overall.add(verdict, latency)
        tags = self._tags[r.item_index] if r.item_index < len(self._tags) else []
        for tag in (*tags, length_bucket(r.input_tokens)) if verdict != SKIPPED else tags:
            q.by_tag.setdefault(tag, _Group()).add(verdict, latency)
        seq = r.seq
        if seq >= len(q.verdict_by_seq):
            q.verdict_by_seq.extend(b"\0" * (seq + 1 - len(q.verdict_by_seq) + 1024))
        code = _CODE[verdict]
        previous = q.verdict_by_seq[seq]
        if r.turn and _WORST[previous] > _WORST[code]:
            code = previous  # pairs compare whole sessions: a session passes when every turn does
        q.verdict_by_seq[seq] = code
        if verdict in (PASS, FAIL) and r.turn == 0:
            slot = q.attempts.setdefault(r.item_index, [0, 0])
            slot[0] += 1
            slot[1] += verdict == PASS
        for s in r.scores or []:
            name = s.get("name") or s.get("scorer")
            st = q.scorers.setdefault(name, _ScorerStats())
            status = s.get("status")
            st.count(status)
            cls = s.get("error_class")
            if cls and status in (FAIL, UNSCORED):
                for c in s.get("error_classes") or [cls]:
                    st.error_classes[c] = st.error_classes.get(c, 0) + 1
                q.error_classes[cls] = q.error_classes.get(cls, 0) + 1
            cost = s.get("cost_usd") or 0.0
            st.cost_usd += cost
            q.judge_cost_usd += cost

    # ------------------------------------------------------------------ views

    def goodput(self, name: str, window_span_s: float | None) -> dict[str, Any]:
        q = self.candidates.get(name) or CandidateQuality()
        return {
            "good": q.good, "attempted": q.attempted,
            "fraction": (q.good / q.attempted) if q.attempted else None,
            "rps": (q.good / window_span_s) if window_span_s else None,
            "definition": "requests on time by every latency SLO and passing scoring, per second of the measurement window",
        }

    def candidate_summary(self, name: str, window_cost_usd: float) -> dict[str, Any] | None:
        q = self.candidates.get(name)
        if q is None or (q.overall.pass_ + q.overall.fail + q.overall.unscored + q.overall.skipped) == 0:
            return None
        scorers = {
            key: {
                "pass": st.pass_, "fail": st.fail, "unscored": st.unscored, "skipped": st.skipped,
                "pass_rate": (st.pass_ / (st.pass_ + st.fail)) if (st.pass_ + st.fail) else None,
                "error_classes": dict(sorted(st.error_classes.items(), key=lambda kv: -kv[1])),
                **({"judge_cost_usd": st.cost_usd} if st.cost_usd else {}),
            }
            for key, st in sorted(q.scorers.items())
        }
        by_tag = {tag: {**g.accuracy(), "latency_mean_s": (g.latency_sum_s / g.latency_n) if g.latency_n else None}
                  for tag, g in sorted(q.by_tag.items())}
        passes = q.overall.pass_
        return {
            "accuracy": q.overall.accuracy(),
            "scorers": scorers,
            "quality_error_classes": dict(sorted(q.error_classes.items(), key=lambda kv: -kv[1])),
            "by_tag": by_tag,
            "per_correct_usd": (window_cost_usd / passes) if passes else None,
            "judge_cost_usd": q.judge_cost_usd,
            "repeats": self._repeats(q),
        }

    @staticmethod
    def _repeats(q: CandidateQuality) -> dict[str, Any] | None:
        counts = list(q.attempts.values())
        if not counts:
            return None
        k_max = min(n for n, _ in counts)
        if k_max < 2:
            return None
        out: dict[str, Any] = {"items": len(counts), "min_attempts": k_max}
        for k in range(1, min(k_max, 5) + 1):
            at = [pass_at_k(n, c, k) for n, c in counts]
            hat = [pass_hat_k(n, c, k) for n, c in counts]
            out[f"pass@{k}"] = sum(x for x in at if x is not None) / len(at)
            out[f"pass^{k}"] = sum(x for x in hat if x is not None) / len(hat)
        return out

    def comparisons(self) -> list[dict[str, Any]]:
        """Paired differences between every two candidates on the requests both scored."""
        names = list(self.candidates)
        out = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                va, vb = self.candidates[a].verdict_by_seq, self.candidates[b].verdict_by_seq
                n = a_only = b_only = 0
                for x, y in zip(va, vb):
                    if x in (1, 2) and y in (1, 2):
                        n += 1
                        if x == 1 and y == 2:
                            a_only += 1
                        elif x == 2 and y == 1:
                            b_only += 1
                if n:
                    out.append({"a": a, "b": b, **paired_difference(a_only, b_only, n)})
        return out
