"""SLO clauses as written in a scenario: parsing into metric, statistic, operator and threshold (pure)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

LATENCY_METRICS = {"latency": "latency_s", "service_time": "service_time_s", "ttft": "ttft_s", "ttfc": "ttfc_s",
                   "itl": "itl_s", "tpot": "tpot_s", "schedule_lag": "schedule_lag_s"}


LATENCY_STATS = ("p50", "p90", "p95", "p99", "p99.9", "p99.99", "max", "mean")  # any pNN[.N] is read


_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")


_LEGACY = {"p999": "p99.9", "p9999": "p99.99"}


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


_CLAUSE = re.compile(r"^\s*([a-z_]+)\s+(?:([a-z0-9_.]+)\s+)?(<=|>=|<|>)\s*\$?\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*(us|µs|ms|s|%|\$)?\s*$")


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

    @property
    def quantile(self) -> float | None:
        """0.95 for p95; None for max and mean."""
        m = _PERCENTILE.match(self.stat)
        return float(m.group(1)) / 100 if m else None


def _latency_stat(text: str, stat: str) -> str:
    stat = _LEGACY.get(stat, stat)
    if stat in ("max", "mean"):
        return stat
    m = _PERCENTILE.match(stat)
    if m and 0 < float(m.group(1)) < 100:
        return stat
    raise ValueError(f"{text!r}: unknown statistic {stat!r}; use a percentile such as p50, p95, p99.9 or p99.99, or max or mean")


def parse_clause(text: str) -> Clause:
    m = _CLAUSE.match(text)
    if not m:
        raise ValueError(f"cannot read SLO {text!r}; write '<metric> [<stat>] <op> <value>[unit]', e.g. 'latency p95 <= 2s'")
    metric, stat, op, value, unit = m.groups()
    unit = unit or ""
    if metric in LATENCY_METRICS:
        stat = _latency_stat(text, stat or "p95")
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
