"""The run summary: a pure view over the recorder's counters and histograms."""

from __future__ import annotations

import contextlib
from typing import Any

from ..config.slo_clauses import parse_clauses
from .confidence import CONFIDENCE
from .decision import decide
from .hdr import count_at_or_below, summarize, values_at_percentiles
from .quality import QualityAggregator
from .recorder import METRICS, CandidateRecorder, Counts, Recorder
from .slo import evaluate
from .validity import ValidityLimits, assess, lag_tolerances

SUMMARY_SCHEMA_VERSION = 1
_METRIC_KEYS = {m: f"{m}_s" for m in METRICS}
# Percentiles of the latency spectrum (HdrHistogram-style percentile distribution) in reports.
SPECTRUM = (0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)


def _requests(c: Counts) -> dict[str, Any]:
    return {
        "scheduled": c.scheduled,
        "sent": c.sent,
        "ok": c.ok,
        "errors": dict(sorted(c.errors.items())),
        "error_total": c.error_count,
        "dropped": c.dropped,
        "cancelled": c.cancelled,
        "retries": c.retries,
    }


def _token_source(c: Counts) -> str:
    sources = {k for k, v in c.token_sources.items() if v}
    if not sources:
        return "none"
    return sources.pop() if len(sources) == 1 else "mixed"


def candidate_summary(rec: CandidateRecorder, *, offered_rate_qps: float | None, mode: str) -> dict[str, Any]:
    w = rec.window
    out: dict[str, Any] = {
        "requests": _requests(rec.total),
        "window": _requests(w),
        "offered_rate_qps": offered_rate_qps if mode == "open" else None,
        "achieved_rate_qps": rec.sent.rate_per_s(),
        "throughput_rps": None,
        "error_ratio": (w.error_count / w.sent) if w.sent else None,
    }
    if rec.done_ok.n >= 1 and rec.first_intended_ok.n >= 1:
        span_ns = rec.done_ok.hi - rec.first_intended_ok.lo
        out["throughput_rps"] = rec.done_ok.n / (span_ns / 1e9) if span_ns > 0 else None
    for metric, key in _METRIC_KEYS.items():
        out[key] = summarize(rec.hists[metric])
    out["histogram_overflows"] = rec.overflows
    lat = rec.hists["latency"]
    if lat.get_total_count():
        values = values_at_percentiles(lat, list(SPECTRUM))
        out["latency_spectrum"] = [[p, values[p] / 1e6] for p in SPECTRUM]
    out["tokens"] = {
        "input": w.input_tokens,
        "output": w.output_tokens,
        "cached": w.cached_tokens,
        "source": _token_source(w),
        "output_per_s": (w.output_tokens / ((rec.done_ok.hi - rec.first_intended_ok.lo) / 1e9))
        if rec.done_ok.n and rec.done_ok.hi > rec.first_intended_ok.lo else None,
        # the whole run, warm-up included, as the server reported it: reconciled with its counters
        "run_server_usage": {"input": rec.total.server_input_tokens, "output": rec.total.server_output_tokens,
                             "responses": rec.total.server_usage_responses},
    }
    out["cost_usd"] = {
        "total": w.cost_usd,
        "per_request": (w.cost_usd / w.sent) if w.sent else None,
        "per_request_stddev": _stddev(w.cost_usd, w.cost_sq_usd, w.sent),
        "run_total": rec.total.cost_usd,
    }
    return out


def _stddev(total: float, total_sq: float, n: int) -> float | None:
    if n < 2:
        return None
    mean = total / n
    return max(total_sq / n - mean * mean, 0.0) ** 0.5


def _closed_span(rec: CandidateRecorder) -> float | None:
    if rec.done_ok.n and rec.done_ok.hi > rec.first_intended_ok.lo:
        return (rec.done_ok.hi - rec.first_intended_ok.lo) / 1e9
    return None


def add_verdicts(summary: dict[str, Any], slo_texts: list[str], limits: ValidityLimits, objective: str,
                 loop_cpu_ratio: float | None, recorder: Recorder | None = None,
                 confidence: float = CONFIDENCE) -> dict[str, Any]:
    """SLO verdicts per candidate (three-valued, from the recorder's histograms when given),
    run validity and the decision, in place."""
    clauses = parse_clauses(slo_texts)
    summary["slo"] = slo_texts
    for name, c in summary["candidates"].items():
        rec = recorder.candidates.get(name) if recorder is not None else None
        c["slo"] = evaluate(clauses, c, rec.hists if rec is not None else None, confidence) if clauses else None
    late: dict[str, int] | None = None
    if recorder is not None and clauses:
        _, sched_limit_s = lag_tolerances(limits, clauses)
        late = {}
        for name, rec in recorder.candidates.items():
            hist = rec.hists["schedule_lag"]
            late[name] = hist.get_total_count() - count_at_or_below(hist, int(sched_limit_s * 1e6))
    summary["validity"] = assess(summary, limits, loop_cpu_ratio, clauses, late)
    summary["decision"] = decide(summary, objective)
    return summary


def slo_confidence(outcome: dict[str, Any]) -> float:
    """The confidence of each clause's interval: 95%, or the per-look level of a run that
    stopped as soon as its verdicts were decided (docs/slo.md)."""
    outcome = outcome or {}
    return float(outcome.get("slo_confidence") or (outcome.get("sequential") or {}).get("per_look_confidence") or CONFIDENCE)


def offered_rate(rec: CandidateRecorder) -> float | None:
    return rec.intended.rate_per_s()


def build_summary(recorder: Recorder, meta: dict[str, Any], outcome: dict[str, Any],
                  quality: QualityAggregator | None = None) -> dict[str, Any]:
    """summary.json content.  `meta` is run.json; `outcome` says how the run ended."""
    mode = meta.get("load", {}).get("mode", "open")
    candidates = {}
    for name, rec in recorder.candidates.items():
        c = candidate_summary(rec, offered_rate_qps=offered_rate(rec), mode=mode)
        q = quality.candidate_summary(name, rec.window.cost_usd) if quality is not None else None
        if q is not None:
            c["accuracy"] = q["accuracy"]
            c["scorers"] = q["scorers"]
            c["quality_error_classes"] = q["quality_error_classes"]
            c["by_tag"] = q["by_tag"]
            c["repeats"] = q["repeats"]
            c["cost_usd"]["per_correct"] = q["per_correct_usd"]
            c["cost_usd"]["judge"] = q["judge_cost_usd"]
        if quality is not None:
            span = rec.intended.span_s() or _closed_span(rec)
            c["goodput"] = quality.goodput(name, span)
            if quality.sessions is not None:
                c["sessions"] = quality.sessions.candidate_summary(name, span)
        cand_meta = (meta.get("candidates") or {}).get(name) or {}
        c["tls_verify"] = not cand_meta.get("insecure", False)
        candidates[name] = c
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "run_id": meta.get("run_id"),
        "scenario": meta.get("scenario"),
        "started_at": meta.get("started_at"),
        "mode": "closed-loop" if mode == "closed" else "open-loop",
        "load": meta.get("load", {}),
        "trace": meta.get("trace"),
        "window": {"warmup_s": meta.get("load", {}).get("warmup_s", 0.0)},
        "outcome": outcome,
        "client": {"event_loop_lag_s": summarize(recorder.loop_lag)},
        "candidates": candidates,
        "comparisons": quality.comparisons() if quality is not None else [],
        "provenance": meta.get("provenance", {}),
    }


class LiveVerdicts:
    """SLO verdicts while the run is going: for the until_decided looks and for /metrics.

    Reads the recorder (flushed once a second) and the quality counters the scoring thread
    keeps; only the parts the clauses need are built, never the whole summary.
    """

    def __init__(self, clauses: list[Any], recorder: Recorder, quality: QualityAggregator | None) -> None:
        self.clauses = clauses
        self.recorder = recorder
        self.quality = quality

    def candidate(self, name: str) -> dict[str, Any]:
        rec = self.recorder.candidates[name]
        w = rec.window
        c: dict[str, Any] = {
            "window": {"sent": w.sent, "error_total": w.error_count},
            "error_ratio": (w.error_count / w.sent) if w.sent else None,
            "cost_usd": {"per_request": (w.cost_usd / w.sent) if w.sent else None,
                         "per_request_stddev": _stddev(w.cost_usd, w.cost_sq_usd, w.sent)},
        }
        q = self.quality.candidates.get(name) if self.quality is not None else None
        if q is not None:
            acc = q.overall.accuracy()
            c["accuracy"] = acc if acc["n"] or acc["skipped"] else None
            c["cost_usd"]["per_correct"] = (w.cost_usd / acc["pass"]) if acc["pass"] else None
            c["goodput"] = {"good": q.good, "attempted": q.attempted, "fraction": (q.good / q.attempted) if q.attempted else None}
            sessions = self.quality.sessions if self.quality is not None else None
            if sessions is not None:
                # the scoring thread may grow a dict while we read it: then the next look sees it
                with contextlib.suppress(RuntimeError):
                    c["sessions"] = sessions.candidate_summary(name, None)
        return c

    def evaluate(self, name: str, confidence: float = CONFIDENCE) -> dict[str, Any]:
        return evaluate(self.clauses, self.candidate(name), self.recorder.candidates[name].hists, confidence)

    def all_decided(self, confidence: float) -> bool:
        return all(self.evaluate(name, confidence)["verdict"] != "inconclusive" for name in self.recorder.candidates)
