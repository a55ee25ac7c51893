"""HdrHistogram helpers: batched recording with numpy, percentile summaries, interval logs."""

from __future__ import annotations

import time
from typing import IO

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 24 * 3600 * 1_000_000  # one day, as wrk2: far above 2x any timeout
SIG_FIGS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


def counts_indices(hist: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """Vectorized twin of HdrHistogram._counts_index_for (values must be >= 0)."""
    masked = values | hist.sub_bucket_mask
    # bit_length via frexp is exact for integers below 2**53 (here: below one day in µs).
    bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + hist.unit_magnitude)
    return ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + (sub_bucket - hist.sub_bucket_half_count)


def record_batch(hist: HdrHistogram, values: np.ndarray | list[int]) -> int:
    """Record many integer values at once; returns how many were out of range (not counted).

    Gives exactly the counts `record_value` would, at a small fraction of its cost.
    """
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        return 0
    given = arr.size
    arr = arr[arr >= 0]
    negatives = int(given - arr.size)
    if arr.size == 0:
        return negatives
    idx = counts_indices(hist, arr)
    ok = idx < hist.counts_len
    overflow = int(arr.size - np.count_nonzero(ok))
    if overflow:
        arr = arr[ok]
        idx = idx[ok]
    if arr.size:
        counts = np.ctypeslib.as_array(hist.counts)
        if arr.size * 16 < hist.counts_len:
            # a small batch: touch only its buckets instead of the whole counts array
            buckets, n = np.unique(idx, return_counts=True)
            counts[buckets] += n.astype(counts.dtype, copy=False)
        else:
            counts += np.bincount(idx, minlength=hist.counts_len).astype(counts.dtype, copy=False)
        hist.total_count += int(arr.size)
        hist.min_value = min(hist.min_value, int(arr.min()))
        hist.max_value = max(hist.max_value, int(arr.max()))
    return overflow + negatives


def reset(hist: HdrHistogram) -> None:
    """Zero a histogram (HdrHistogram.reset loops in Python over every counter)."""
    np.ctypeslib.as_array(hist.counts)[:] = 0
    hist.total_count = 0
    hist.min_value = 2**63 - 1
    hist.max_value = 0


def value_at_percentile(hist: HdrHistogram, percentile: float) -> int:
    """Same answer as HdrHistogram.get_value_at_percentile, with a numpy cumulative sum
    instead of a Python walk over every counter (which stalls an event loop for ms)."""
    return values_at_percentiles(hist, [percentile])[percentile]


def values_at_percentiles(hist: HdrHistogram, percentiles: list[float]) -> dict[float, int]:
    total = hist.get_total_count()
    if total == 0:
        return {p: 0 for p in percentiles}
    cumulative = np.cumsum(np.ctypeslib.as_array(hist.counts))
    out = {}
    for p in percentiles:
        target = hist.get_target_count_at_percentile(p)
        index = int(np.searchsorted(cumulative, target, side="left"))
        if index >= hist.counts_len:
            out[p] = 0
            continue
        value = hist.get_value_from_index(index)
        out[p] = hist.get_highest_equivalent_value(value) if p else hist.get_lowest_equivalent_value(value)
    return out


def summarize(hist: HdrHistogram, scale: float = 1e-6) -> dict[str, float | int | None]:
    """Percentiles and moments of a µs histogram, in seconds (scale) with the sample count."""
    n = hist.get_total_count()
    out: dict[str, float | int | None] = {"count": n}
    if n == 0:
        for key in (*PERCENTILES, "min", "max", "mean", "stddev"):
            out[key] = None
        return out
    values = values_at_percentiles(hist, list(PERCENTILES.values()))
    for key, pct in PERCENTILES.items():
        out[key] = values[pct] * scale
    out["min"] = hist.get_min_value() * scale
    out["max"] = hist.get_max_value() * scale
    mean, stddev = mean_stddev(hist)
    out["mean"] = mean * scale
    out["stddev"] = stddev * scale
    return out


def mean_stddev(hist: HdrHistogram) -> tuple[float, float]:
    """Mean and standard deviation over the recorded buckets (each at its median-equivalent
    value, as HdrHistogram does), visiting only non-empty counters: hdrh's own
    get_mean_value/get_stddev walk every counter in Python and take ~0.5 s each."""
    counts = np.ctypeslib.as_array(hist.counts)
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return 0.0, 0.0
    weights = counts[nonzero].astype(np.float64)
    values = np.array(
        [hist._hdr_median_equiv_value(hist.get_value_from_index(int(i))) for i in nonzero], dtype=np.float64
    )
    total = weights.sum()
    mean = float((values * weights).sum() / total)
    var = float((((values - mean) ** 2) * weights).sum() / total)
    return mean, var**0.5


class HlogWriter:
    """HdrHistogram interval log (format 1.2 with Tag=), written by hand because the hdrh
    package's writer emits no tags and has a broken StartTime line."""

    def __init__(self, f: IO[str], start_epoch_s: float | None = None) -> None:
        self._f = f
        start = time.time() if start_epoch_s is None else start_epoch_s
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        f.write("#[Histogram log format version 1.2]\n")
        f.write(f"#[StartTime: {start:.3f} (seconds since epoch), {iso}Z]\n")
        f.write(f"#[BaseTime: {start:.3f} (seconds since epoch)]\n")
        f.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')

    def write_interval(self, tag: str, start_s: float, length_s: float, hist: HdrHistogram) -> None:
        max_ms = hist.get_max_value() / 1000.0 if hist.get_total_count() else 0.0
        blob = hist.encode().decode("ascii")
        self._f.write(f"Tag={tag},{start_s:.3f},{length_s:.3f},{max_ms:.3f},{blob}\n")

    def flush(self) -> None:
        self._f.flush()


def read_hlog(path: str) -> list[tuple[str | None, float, float, HdrHistogram]]:
    """Parse a (tagged) interval log: (tag, start_s, length_s, histogram) per line."""
    out = []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line.startswith('"'):
                continue
            tag = None
            if line.startswith("Tag="):
                tag, _, line = line[4:].partition(",")
            start, length, _max, blob = line.split(",", 3)
            out.append((tag, float(start), float(length), HdrHistogram.decode(blob.encode("ascii"))))
    return out


def count_at_or_below(hist: HdrHistogram, value_us: int) -> int:
    """Samples at or below a value (values in the same HDR bucket as it count as equal to it)."""
    if hist.get_total_count() == 0:
        return 0
    if value_us < 0:
        return 0
    if value_us >= hist.get_max_value():
        return hist.get_total_count()
    index = min(hist._counts_index_for(int(value_us)), hist.counts_len - 1)
    return int(np.ctypeslib.as_array(hist.counts)[: index + 1].sum())


def values_at_ranks(hist: HdrHistogram, ranks: list[int]) -> list[int]:
    """The value of the r-th smallest sample (1-based) for each rank, at HDR precision."""
    cumulative = np.cumsum(np.ctypeslib.as_array(hist.counts))
    out = []
    for rank in ranks:
        index = int(np.searchsorted(cumulative, rank, side="left"))
        index = min(index, hist.counts_len - 1)
        out.append(hist.get_highest_equivalent_value(hist.get_value_from_index(index)))
    return out
