"""Fault injection for the simulator: which fault (if any) hits a request, per rate and schedule (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.faults import FAULTS, FaultSpec, FaultWindow
from .model import unit_draw


@dataclass(slots=True)
class FaultPicker:
    spec: FaultSpec
    seed: int = 0

    def pick(self, request_no: int, t_s: float) -> str | None:
        """Deterministic per (seed, request number): the fault for this request, if any."""
        u = unit_draw(self.seed, request_no, "fault")
        edge = 0.0
        for name in FAULTS:
            value = getattr(self.spec, name)
            if isinstance(value, FaultWindow):
                active = value.start_s <= t_s and (value.end_s is None or t_s < value.end_s)
                rate = value.rate if active else 0.0
            else:
                rate = float(value)
            edge += rate
            if u < edge:
                return name
        return None
