"""Live progress on the console: one line per candidate, redrawn in place on a terminal."""

from __future__ import annotations

import sys
from typing import IO

from ..pacing.runner import Lane
from ..stats.hdr import value_at_percentile
from ..stats.recorder import Recorder
from .text import fmt_s


def progress_lines(recorder: Recorder, lanes: list[Lane], elapsed_s: float, planned_s: float | None) -> list[str]:
    head = f"[{elapsed_s:6.1f}s" + (f" / {planned_s:.0f}s]" if planned_s else "]")
    width = max(len(lane.name) for lane in lanes)
    lines = []
    for lane in lanes:
        rec = recorder.candidates[lane.name]
        t = rec.total
        hist = rec.hists["latency"]
        p95 = value_at_percentile(hist, 95.0) * 1e-6 if hist.get_total_count() else None
        lines.append(
            f"{head} {lane.name.ljust(width)}  sent {t.sent:>7}  in-flight {lane.in_flight:>5}  "
            f"ok {t.ok:>7}  err {t.error_count:>5}  drop {t.dropped:>5}  p95 {fmt_s(p95):>8}"
        )
    return lines


class ProgressView:
    def __init__(self, stream: IO[str] | None = None, *, interactive: bool | None = None, every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every_s = every_s
        self._drawn = 0
        self._last_plain = -1e9

    def show(self, lines: list[str], elapsed_s: float) -> None:
        if self.interactive:
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F")
            for line in lines:
                self.stream.write("\x1b[2K" + line + "\n")
            self._drawn = len(lines)
            self.stream.flush()
        elif elapsed_s - self._last_plain >= self.every_s:
            self._last_plain = elapsed_s
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
