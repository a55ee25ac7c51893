"""HDR recording: per-value record_value vs loadbench's numpy batch, side by side (µs per value)."""

from __future__ import annotations

import time

import numpy as np

from loadbench.stats.hdr import new_histogram, record_batch


def main() -> None:
    rng = np.random.default_rng(1)
    print(f"{'batch size':>10} {'record_value us/value':>22} {'record_batch us/value':>22} {'ratio':>7}  equal")
    for n in (100, 1_000, 15_000, 100_000):
        values = rng.lognormal(9, 1.5, n).astype(np.int64)
        listed = values.tolist()
        one = new_histogram()
        t = time.perf_counter()
        for v in listed:
            one.record_value(v)
        per_value = (time.perf_counter() - t) / n * 1e6
        batch = new_histogram()
        t = time.perf_counter()
        record_batch(batch, values)
        per_batch = (time.perf_counter() - t) / n * 1e6
        print(f"{n:>10} {per_value:>22.3f} {per_batch:>22.3f} {per_value / per_batch:>7.1f}  {one.equals(batch)}")


if __name__ == "__main__":
    main()
