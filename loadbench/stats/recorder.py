"""Aggregates the stream of per-request records: counters and HDR histograms per candidate."""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

from ..pacing.records import CANCELLED, DROPPED, OK, RequestResult
from .hdr import HlogWriter, new_histogram, record_batch, reset

# Histogram metrics, each recorded in µs.
METRICS = ("latency", "service_time", "ttft", "ttfc", "itl", "tpot", "schedule_lag")

# Prometheus bucket bounds (seconds) per metric: LLM-sized, well past any timeout.
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 30, 60)
TOKEN_GAP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2)
LAG_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PROM_BUCKETS_S = {
    "latency": LATENCY_BUCKETS_S, "service_time": LATENCY_BUCKETS_S, "ttft": TTFT_BUCKETS_S, "ttfc": TTFT_BUCKETS_S,
    "itl": TOKEN_GAP_BUCKETS_S, "tpot": TOKEN_GAP_BUCKETS_S, "schedule_lag": LAG_BUCKETS_S,
}


class PromHistogram:
    """Cumulative Prometheus-style bucket counts, filled in numpy batches at each flush."""

    __slots__ = ("bounds_us", "count", "counts", "sum_s")

    def __init__(self, bounds_s: tuple[float, ...], extra_s: tuple[float, ...] = ()) -> None:
        bounds = sorted(set(bounds_s) | set(extra_s))
        self.bounds_us = np.array([round(b * 1e6) for b in bounds], dtype=np.int64)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # last slot: +Inf only
        self.sum_s = 0.0
        self.count = 0

    def add(self, values_us: np.ndarray) -> None:
        if values_us.size == 0:
            return
        idx = np.searchsorted(self.bounds_us, values_us, side="left")
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.sum_s += float(values_us.sum()) / 1e6
        self.count += int(values_us.size)

    def buckets(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs, ending with +Inf."""
        cumulative = np.cumsum(self.counts).tolist()
        out = [(f"{b / 1e6:g}", c) for b, c in zip(self.bounds_us.tolist(), cumulative)]
        out.append(("+Inf", cumulative[-1]))
        return out


@dataclass(slots=True)
class Counts:
    scheduled: int = 0
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    cancelled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    cost_sq_usd: float = 0.0  # sum of squares: the spread behind a cost-per-task interval
    token_sources: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    # Tokens the server itself reported (usage), whatever the request's end: what a server's own
    # counters should agree with.
    server_input_tokens: int = 0
    server_output_tokens: int = 0
    server_usage_responses: int = 0

    def add(self, r: RequestResult) -> None:
        self.scheduled += 1
        self.retries += r.retries
        status = r.status
        if status == DROPPED:
            self.dropped += 1
            return
        self.sent += 1
        if status == OK:
            self.ok += 1
        elif status == CANCELLED:
            self.cancelled += 1
        else:
            cls = r.error_class or "unknown"
            self.errors[cls] = self.errors.get(cls, 0) + 1
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cached_tokens += r.cached_tokens
        self.cost_usd += r.cost_usd
        self.cost_sq_usd += r.cost_usd * r.cost_usd
        if r.token_source == "server":
            self.server_input_tokens += r.input_tokens
            self.server_output_tokens += r.output_tokens
            self.server_usage_responses += status == OK
        if status == OK:
            self.token_sources[r.token_source] = self.token_sources.get(r.token_source, 0) + 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class _Span:
    """min/max of a set of offsets, for rates over the measurement window."""

    __slots__ = ("hi", "lo", "n")

    def __init__(self) -> None:
        self.lo = -1
        self.hi = -1
        self.n = 0

    def add(self, v: int) -> None:
        if v < 0:
            return
        if self.n == 0 or v < self.lo:
            self.lo = v
        if v > self.hi:
            self.hi = v
        self.n += 1

    def span_s(self) -> float | None:
        """The time these n events cover, counting one mean gap for the last event."""
        if self.n < 2 or self.hi <= self.lo:
            return None
        return (self.hi - self.lo) / 1e9 * self.n / (self.n - 1)

    def rate_per_s(self) -> float | None:
        if self.n < 2 or self.hi <= self.lo:
            return None
        return (self.n - 1) / ((self.hi - self.lo) / 1e9)


class CandidateRecorder:
    __slots__ = (
        "_buffers",
        "done_ok",
        "first_intended_ok",
        "hists",
        "intended",
        "interval",
        "name",
        "overflows",
        "prom",
        "sent",
        "total",
        "window",
    )

    def __init__(self, name: str, extra_buckets_s: dict[str, tuple[float, ...]] | None = None) -> None:
        self.name = name
        self.total = Counts()
        self.window = Counts()
        self.hists: dict[str, HdrHistogram] = {m: new_histogram() for m in METRICS}
        self.interval: dict[str, HdrHistogram] = {m: new_histogram() for m in METRICS}
        # (metric, in_window) -> buffered µs values; recorded in one numpy batch per flush.
        # array('q') rather than list: numpy reads it without converting each element.
        self._buffers: dict[str, tuple[array[int], array[int]]] = {m: (array("q"), array("q")) for m in METRICS}
        self.overflows = 0
        self.intended = _Span()
        self.sent = _Span()
        self.done_ok = _Span()
        self.first_intended_ok = _Span()
        extra = extra_buckets_s or {}
        self.prom = {m: PromHistogram(PROM_BUCKETS_S[m], extra.get(m, ())) for m in METRICS}

    def add(self, r: RequestResult) -> None:
        self.total.add(r)
        in_window = r.in_window
        if in_window:
            self.window.add(r)
            self.intended.add(r.intended_ns)
        if r.status == DROPPED:
            return
        b = self._buffers
        slot = 1 if in_window else 0
        if r.sent_ns >= 0:
            b["schedule_lag"][slot].append(max(0, r.sent_ns - r.intended_ns) // 1000)
            if in_window:
                self.sent.add(r.sent_ns)
        if r.status != OK:
            return
        if in_window:
            self.done_ok.add(r.done_ns)
            self.first_intended_ok.add(r.intended_ns)
        b["latency"][slot].append((r.done_ns - r.intended_ns) // 1000)
        b["service_time"][slot].append((r.done_ns - r.sent_ns) // 1000)
        if r.first_token_ns >= 0:
            b["ttft"][slot].append((r.first_token_ns - r.intended_ns) // 1000)
        if r.first_content_ns >= 0:
            b["ttfc"][slot].append((r.first_content_ns - r.intended_ns) // 1000)
        if r.itl_us:
            b["itl"][slot].extend(r.itl_us)
            if r.output_tokens >= 2:
                b["tpot"][slot].append(sum(r.itl_us) // (r.output_tokens - 1))

    def flush(self) -> None:
        """Move buffered values into the interval and window histograms."""
        deque(self.flush_steps(), maxlen=0)  # run every step at once

    def flush_steps(self) -> Iterator[None]:
        """flush() one metric at a time, yielding between them (records may arrive meanwhile)."""
        buffers = self._buffers
        for metric in list(buffers):
            outside, inside = buffers[metric]
            if not inside and not outside:
                continue
            buffers[metric] = (array("q"), array("q"))  # fresh buffers; numpy keeps reading the old ones
            if inside:
                values = np.frombuffer(inside, dtype=np.int64)
                self.overflows += record_batch(self.hists[metric], values)
                record_batch(self.interval[metric], values)
                self.prom[metric].add(values)
            if outside:
                values = np.frombuffer(outside, dtype=np.int64)
                self.overflows += record_batch(self.interval[metric], values)
                self.prom[metric].add(values)
            yield


class Recorder:
    """The sink every record passes through; cheap per record, batched per flush."""

    def __init__(self, candidates: list[str], hlog: HlogWriter | None = None,
                 extra_buckets_s: dict[str, tuple[float, ...]] | None = None) -> None:
        self.candidates = {name: CandidateRecorder(name, extra_buckets_s) for name in candidates}
        self._hlog = hlog
        self._interval_start_s = 0.0
        self.loop_lag = new_histogram()
        self.loop_lag_prom = PromHistogram(LAG_BUCKETS_S)
        self._loop_lag_buf: array[int] = array("q")

    def __call__(self, r: RequestResult) -> None:
        self.candidates[r.candidate].add(r)

    def record_loop_lag_us(self, lag_us: int) -> None:
        self._loop_lag_buf.append(lag_us)

    def flush(self, now_s: float | None = None) -> None:
        """Record buffered values; with an interval log, also close the interval at now_s."""
        deque(self.flush_steps(now_s), maxlen=0)  # run every step at once

    def flush_steps(self, now_s: float | None = None) -> Iterator[None]:
        """flush() in steps of about 0.1-0.3 ms, yielding between them, so that the sending loop
        can send what falls due meanwhile instead of waiting for the whole flush (~2 ms)."""
        if self._loop_lag_buf:
            lags, self._loop_lag_buf = self._loop_lag_buf, array("q")
            values = np.frombuffer(lags, dtype=np.int64)
            record_batch(self.loop_lag, values)
            self.loop_lag_prom.add(values)
        for rec in self.candidates.values():
            yield from rec.flush_steps()
        # every buffered value up to here is in the interval histograms; what arrives from now
        # on waits in the buffers for the next flush, so the interval can be closed in steps too
        if self._hlog is not None and now_s is not None:
            length = max(0.0, now_s - self._interval_start_s)
            for rec in self.candidates.values():
                for metric, hist in rec.interval.items():
                    if hist.get_total_count():
                        self._hlog.write_interval(f"{rec.name}.{metric}", self._interval_start_s, length, hist)
                        reset(hist)
                        yield
            self._hlog.flush()
            self._interval_start_s = now_s
        else:
            for rec in self.candidates.values():
                for hist in rec.interval.values():
                    reset(hist)

