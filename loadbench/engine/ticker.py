"""Once a second during a run: flush the recorder, apply abort rules, take the until-decided looks, show progress."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

from ..config.scenario import AbortRule, Scenario
from ..pacing.clock import Clock
from ..pacing.runner import Lane, Plan
from ..plan.resolve import NS_PER_S
from ..stats.recorder import Recorder
from ..stats.sequential import LookPlan
from ..stats.summary import LiveVerdicts
from ..views.progress import ProgressView, progress_lines
from ..views.prometheus import RunState


@dataclass(slots=True)
class Ticker:
    scenario: Scenario
    plan: Plan
    runner: Any  # Runner or a worker pool: t0_ns, stopping, dispatched, request_stop
    recorder: Recorder
    clock: Clock
    run_state: RunState
    lanes: list[Lane]
    live: LiveVerdicts
    looks: LookPlan | None
    view: ProgressView | None
    planned_s: float | None
    sequential: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[float, dict[str, tuple[int, int, int]]]] = field(default_factory=list)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += 1.0  # on a fixed grid: the work below does not push later ticks back
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            elapsed = (self.clock.now_ns() - self.runner.t0_ns) / NS_PER_S
            for _ in self.recorder.flush_steps(elapsed):
                await asyncio.sleep(0)  # sends that fell due go out between the steps
            self.check(elapsed)

    def check(self, elapsed: float) -> None:
        runner, scenario = self.runner, self.scenario
        if scenario.abort_on and not runner.stopping:
            reason = abort_reason(scenario.abort_on, self.recorder, self.history, elapsed)
            if reason:
                sys.stderr.write(f"\nloadbench: {reason}; stopping the run\n")
                runner.request_stop(reason)
        looks = self.looks
        if looks is not None and not runner.stopping and elapsed >= looks.look_at(self.sequential["looks_taken"]):
            self.sequential["looks_taken"] += 1
            if self.live.all_decided(looks.per_look_confidence):
                self.sequential["decided_at_s"] = round(elapsed, 3)
                runner.request_stop(f"decided: every SLO verdict settled at look {self.sequential['looks_taken']} "
                                    f"({elapsed:.0f}s)")
        state = self.run_state
        if state.phase != "drain":
            state.phase = "warmup" if elapsed < scenario.load.warmup_s else "measure"
            if runner.stopping or (self.plan.mode == "open" and runner.dispatched >= len(self.plan.offsets_ns)):
                state.phase = "drain"
        self.show(elapsed)

    def show(self, elapsed: float, final: bool = False) -> None:
        if self.view is not None:
            self.view.show(progress_lines(self.recorder, self.lanes, elapsed, self.planned_s), 1e9 if final else elapsed)


def abort_reason(rules: list[AbortRule], recorder: Recorder, history: list[tuple[float, dict[str, tuple[int, int, int]]]],
                 now_s: float) -> str | None:
    """Check abort rules over a sliding window of per-second counter snapshots."""
    snapshot = {name: (rec.total.sent, rec.total.error_count, rec.total.dropped) for name, rec in recorder.candidates.items()}
    history.append((now_s, snapshot))
    for rule in rules:
        past = next(((t, s) for t, s in history if now_s - t <= rule.window_s), None)
        if past is None:
            continue
        for name, (sent, errors, dropped) in snapshot.items():
            if rule.candidate and rule.candidate != name:
                continue
            sent0, errors0, dropped0 = past[1].get(name, (0, 0, 0))
            d_sent, d_err, d_drop = sent - sent0, errors - errors0, dropped - dropped0
            if rule.metric == "error_ratio" and d_sent >= rule.min_requests and d_err / d_sent > rule.above:
                return f"aborted: {name} error ratio {d_err / d_sent:.2f} > {rule.above:g} over the last {rule.window_s:g}s"
            total = d_sent + d_drop
            if rule.metric == "drop_ratio" and total >= rule.min_requests and d_drop / total > rule.above:
                return f"aborted: {name} drop ratio {d_drop / total:.2f} > {rule.above:g} over the last {rule.window_s:g}s"
    cutoff = now_s - max((r.window_s for r in rules), default=0) - 2
    while history and history[0][0] < cutoff:
        history.pop(0)
    return None
