import io

import numpy as np
import pytest

from loadbench.stats.hdr import (
    HIGHEST_US,
    HlogWriter,
    new_histogram,
    read_hlog,
    record_batch,
    reset,
    summarize,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_recording_equals_record_value(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([
        rng.integers(0, 2048, 500),  # the linear first bucket
        rng.lognormal(9, 2.5, 5000).astype(np.int64),  # µs to minutes
        [0, 1, 2047, 2048, 2049, HIGHEST_US, HIGHEST_US * 4],
    ])
    one, batch = new_histogram(), new_histogram()
    rejected = sum(not one.record_value(int(v)) for v in values)
    assert record_batch(batch, values) == rejected == 1
    assert one.equals(batch)
    assert summarize(one) == summarize(batch)


def test_negative_values_are_rejected_and_counted():
    h = new_histogram()
    assert record_batch(h, [-5, 10, 20]) == 1
    assert h.get_total_count() == 2


def test_reset_zeroes_everything():
    h = new_histogram()
    record_batch(h, [5, 500, 50_000])
    reset(h)
    assert h.get_total_count() == 0 and summarize(h)["p50"] is None
    record_batch(h, [7])
    assert h.get_min_value() == 7 and h.get_max_value() == 7


def test_summary_is_in_seconds_with_count():
    h = new_histogram()
    record_batch(h, list(range(1, 1001)))  # 1..1000 µs
    s = summarize(h)
    assert s["count"] == 1000
    assert s["p50"] == pytest.approx(500e-6, rel=1e-3)
    assert s["p99"] == pytest.approx(990e-6, rel=1e-3)
    assert s["max"] == pytest.approx(1000e-6, rel=1e-3)


def test_encode_decode_merge_gives_the_same_percentiles_as_one_histogram():
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(8 + k, 1.5, 3000).astype(np.int64) for k in range(3)]
    whole = new_histogram()
    record_batch(whole, np.concatenate(parts))
    merged = new_histogram()
    for part in parts:
        h = new_histogram()
        record_batch(h, part)
        merged.decode_and_add(h.encode())
    assert summarize(merged) == summarize(whole)


def test_hlog_round_trip_with_tags():
    buf = io.StringIO()
    w = HlogWriter(buf, start_epoch_s=1_700_000_000.0)
    a, b = new_histogram(), new_histogram()
    record_batch(a, [100, 200, 300])
    record_batch(b, [5_000_000])
    w.write_interval("fast.latency", 0.0, 1.0, a)
    w.write_interval("slow.latency", 1.0, 1.0, b)
    text = buf.getvalue()
    assert text.startswith("#[Histogram log format version 1.2]")
    assert "#[StartTime: 1700000000.000" in text
    path = __import__("tempfile").mktemp(suffix=".hlog")
    with open(path, "w") as f:
        f.write(text)
    rows = read_hlog(path)
    assert [(t, s, n) for t, s, n, _ in rows] == [("fast.latency", 0.0, 1.0), ("slow.latency", 1.0, 1.0)]
    assert rows[0][3].get_total_count() == 3 and rows[1][3].get_max_value() >= 5_000_000


def test_fast_mean_and_stddev_match_hdrh():
    from loadbench.stats.hdr import mean_stddev

    rng = np.random.default_rng(3)
    h = new_histogram()
    record_batch(h, rng.lognormal(8, 2, 4000).astype(np.int64))
    mean, stddev = mean_stddev(h)
    assert mean == pytest.approx(h.get_mean_value(), rel=1e-9)
    assert stddev == pytest.approx(h.get_stddev(), rel=1e-9)


@pytest.mark.parametrize("pcts", [[0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]])
def test_fast_percentiles_match_hdrh(pcts):
    from loadbench.stats.hdr import values_at_percentiles

    rng = np.random.default_rng(8)
    h = new_histogram()
    record_batch(h, rng.lognormal(7, 2.2, 3000).astype(np.int64))
    assert values_at_percentiles(h, pcts) == h.get_percentile_to_value_dict(pcts)
    assert all(values_at_percentiles(h, [p])[p] == h.get_value_at_percentile(p) for p in pcts)
