"""SLO clauses: parsing, evaluation on a summary, and the per-request check behind goodput (pure)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .records import OK, RequestResult

LATENCY_METRICS = {"latency": "latency_s", "service_time": "service_time_s", "ttft": "ttft_s", "ttfc": "ttfc_s",
                   "itl": "itl_s", "tpot": "tpot_s", "schedule_lag": "schedule_lag_s"}
LATENCY_STATS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
OTHER_METRICS = {
    "error_ratio": ("value",),
    "accuracy": ("value", "ci_low", "ci_high", "attempted"),
    "cost_per_task": ("value",),
    "cost_per_correct": ("value",),
    "goodput_ratio": ("value",),
    # Sessions (docs/sessions.md): the share of multi-turn sessions whose every turn passed, and
    # of agentic tasks whose trajectory and answer passed.
    "session_pass_rate": ("value", "ci_low", "ci_high"),
    "task_pass_rate": ("value", "ci_low", "ci_high"),
}
OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "$": 1.0, "": 1.0, "%": 0.01}
_CLAUSE = re.compile(r"^\s*([a-z_]+)\s+(?:([a-z0-9_]+)\s+)?(<=|>=|<|>)\s*\$?\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*(us|µs|ms|s|%|\$)?\s*$")


@dataclass(frozen=True, slots=True)
class Clause:
    text: str
    metric: str
    stat: str
    op: str
    threshold: float  # base units: seconds, ratio, USD

    @property
    def is_latency(self) -> bool:
        return self.metric in LATENCY_METRICS


def parse_clause(text: str) -> Clause:
    m = _CLAUSE.match(text)
    if not m:
        raise ValueError(f"cannot read SLO {text!r}; write '<metric> [<stat>] <op> <value>[unit]', e.g. 'latency p95 <= 2s'")
    metric, stat, op, value, unit = m.groups()
    unit = unit or ""
    if metric in LATENCY_METRICS:
        stat = stat or "p95"
        if stat not in LATENCY_STATS:
            raise ValueError(f"{text!r}: unknown statistic {stat!r} for {metric}; use one of {', '.join(LATENCY_STATS)}")
        if unit in ("%", "$"):
            raise ValueError(f"{text!r}: a latency needs a time unit (us, ms, s)")
        if not unit:
            raise ValueError(f"{text!r}: give the unit (e.g. 500ms or 2s)")
    elif metric in OTHER_METRICS:
        stat = stat or "value"
        if stat not in OTHER_METRICS[metric]:
            raise ValueError(f"{text!r}: unknown statistic {stat!r} for {metric}; use one of {', '.join(OTHER_METRICS[metric])}")
        if unit in ("us", "µs", "ms", "s"):
            raise ValueError(f"{text!r}: {metric} is not a time")
    else:
        known = ", ".join([*LATENCY_METRICS, *OTHER_METRICS])
        raise ValueError(f"{text!r}: unknown metric {metric!r}; known: {known}")
    return Clause(text.strip(), metric, stat, op, float(value) * UNITS[unit])


def parse_clauses(texts: list[str]) -> list[Clause]:
    return [parse_clause(t) for t in texts]


# Percentile -> samples needed before it is worth reporting: about 10 samples beyond it.
MIN_SAMPLES = {"p50": 20, "p90": 100, "p95": 200, "p99": 1000, "p999": 10000, "max": 1, "mean": 1}


def measured(clause: Clause, c: dict[str, Any]) -> tuple[float | None, int | None]:
    """The candidate's value for a clause (from its summary) and the sample count behind it."""
    if clause.is_latency:
        stats = c.get(LATENCY_METRICS[clause.metric]) or {}
        return stats.get(clause.stat), stats.get("count")
    if clause.metric == "error_ratio":
        return c.get("error_ratio"), (c.get("window") or {}).get("sent")
    if clause.metric == "accuracy":
        acc = c.get("accuracy") or {}
        key = {"value": "value", "ci_low": "ci_low", "ci_high": "ci_high", "attempted": "attempted_value"}[clause.stat]
        return acc.get(key), acc.get("n")
    if clause.metric == "cost_per_task":
        return (c.get("cost_usd") or {}).get("per_request"), (c.get("window") or {}).get("sent")
    if clause.metric == "cost_per_correct":
        return (c.get("cost_usd") or {}).get("per_correct"), (c.get("accuracy") or {}).get("pass")
    if clause.metric == "goodput_ratio":
        return (c.get("goodput") or {}).get("fraction"), (c.get("goodput") or {}).get("attempted")
    if clause.metric in ("session_pass_rate", "task_pass_rate"):
        view = (c.get("sessions") or {}).get("sessions" if clause.metric == "session_pass_rate" else "tasks") or {}
        ci = view.get("pass_rate_ci") or [None, None]
        value = {"value": view.get("pass_rate"), "ci_low": ci[0], "ci_high": ci[1]}[clause.stat]
        scored = (view.get("passed") or 0) + (view.get("failed") or 0)
        return value, scored if view else None
    return None, None


def evaluate(clauses: list[Clause], c: dict[str, Any]) -> dict[str, Any]:
    """Every clause with its measured value; ok only if all hold (an unmeasured value fails)."""
    results = []
    for clause in clauses:
        value, n = measured(clause, c)
        ok = value is not None and OPS[clause.op](value, clause.threshold)
        entry: dict[str, Any] = {"clause": clause.text, "metric": clause.metric, "stat": clause.stat, "op": clause.op,
                                 "threshold": clause.threshold, "measured": value, "n": n, "ok": ok}
        if value is None:
            entry["note"] = "not measured"
        if clause.is_latency and n is not None:
            entry["sufficient"] = n >= MIN_SAMPLES.get(clause.stat, 1)
        results.append(entry)
    return {"ok": all(r["ok"] for r in results), "failing": [r["clause"] for r in results if not r["ok"]], "clauses": results}


def request_check(clauses: list[Clause]) -> Callable[[RequestResult], bool] | None:
    """A request is on time when it meets every latency clause's threshold itself
    (DistServe-style goodput: the percentile applies to the population, the bound to each request)."""
    latency = [c for c in clauses if c.is_latency and c.op in ("<=", "<")]
    if not latency:
        return None
    bounds = [(c.metric, c.threshold, c.op == "<") for c in latency]

    def on_time(r: RequestResult) -> bool:
        if r.status != OK:
            return False
        for metric, limit, strict in bounds:
            if metric == "latency":
                v = r.latency_ns
            elif metric == "service_time":
                v = r.service_ns
            elif metric == "ttft":
                v = r.ttft_ns
            elif metric == "ttfc":
                v = r.ttfc_ns
            elif metric == "schedule_lag":
                v = r.schedule_lag_ns
            else:  # itl, tpot: the request's own time per output token
                v = r.tpot_ns
            if v < 0:
                continue  # not measurable for this request (e.g. one output token): not held against it
            s = v / 1e9
            if s > limit or (strict and s == limit):
                return False
        return True

    return on_time
