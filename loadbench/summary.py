"""The run summary: a pure view over the recorder's counters and histograms."""

from __future__ import annotations

from typing import Any

from .decision import decide
from .hdr import summarize, values_at_percentiles
from .quality import QualityAggregator
from .recorder import METRICS, CandidateRecorder, Counts, Recorder
from .slo import evaluate, parse_clauses
from .validity import ValidityLimits, assess

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
    }
    out["cost_usd"] = {
        "total": w.cost_usd,
        "per_request": (w.cost_usd / w.sent) if w.sent else None,
        "run_total": rec.total.cost_usd,
    }
    return out


def _closed_span(rec: CandidateRecorder) -> float | None:
    if rec.done_ok.n and rec.done_ok.hi > rec.first_intended_ok.lo:
        return (rec.done_ok.hi - rec.first_intended_ok.lo) / 1e9
    return None


def add_verdicts(summary: dict[str, Any], slo_texts: list[str], limits: ValidityLimits, objective: str,
                 loop_cpu_ratio: float | None) -> dict[str, Any]:
    """SLO verdicts per candidate, run validity and the decision, in place."""
    clauses = parse_clauses(slo_texts)
    summary["slo"] = slo_texts
    for c in summary["candidates"].values():
        c["slo"] = evaluate(clauses, c) if clauses else None
    summary["validity"] = assess(summary, limits, loop_cpu_ratio)
    summary["decision"] = decide(summary, objective)
    return summary


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
