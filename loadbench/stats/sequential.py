"""Run-until-decided: the fixed schedule of looks and the per-look confidence (pure).

The procedure is a fixed number of looks with a Bonferroni split of the error: with K looks
planned between the least duration and the cap, every look judges its intervals at
1 - 0.05/K, so the chance that any look declares a wrong pass or fail stays within 5%
whatever the looks' dependence (docs/slo.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .confidence import CONFIDENCE, per_look_confidence


@dataclass(frozen=True, slots=True)
class LookPlan:
    first_look_s: float  # seconds from the run's start (warm-up included)
    interval_s: float
    looks: int
    confidence: float = CONFIDENCE

    @property
    def per_look_confidence(self) -> float:
        return per_look_confidence(self.confidence, self.looks)

    def look_at(self, k: int) -> float:
        return self.first_look_s + k * self.interval_s

    def describe(self) -> dict[str, Any]:
        return {"procedure": "fixed looks, Bonferroni split", "looks_planned": self.looks,
                "first_look_s": self.first_look_s, "interval_s": self.interval_s,
                "confidence": self.confidence, "per_look_confidence": self.per_look_confidence}


def look_plan(load: Any) -> LookPlan | None:
    """The looks of an until_decided run (None for an ordinary run)."""
    if not getattr(load, "until_decided", False):
        return None
    confidence = getattr(load, "confidence", CONFIDENCE)
    least_s = load.duration_s if load.duration_s is not None else (load.requests or 0) / load.rate_qps
    cap_s = load.max_duration_s if load.max_duration_s is not None else load.max_requests / load.rate_qps
    least_s = max(least_s, min(load.check_interval_s, cap_s))
    looks = 1 + max(0, math.floor((cap_s - least_s) / load.check_interval_s + 1e-9))
    return LookPlan(load.warmup_s + least_s, load.check_interval_s, looks, confidence)


def schedule_bounds(load: Any) -> tuple[float | None, int | None]:
    """(duration_s, requests) the arrival schedule covers: the cap of an until_decided run."""
    if getattr(load, "until_decided", False):
        return load.max_duration_s, load.max_requests
    return load.duration_s, load.requests
