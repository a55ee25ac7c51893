"""Recorder and summary: counts, window exclusion, histograms, rates, the results-log round trip."""

from pathlib import Path

import pytest

from loadbench.pacing.records import CANCELLED, DROPPED, ERROR, OK, RequestResult
from loadbench.pacing.results_log import ResultsLog, iter_results
from loadbench.stats.rebuild import rebuild_summary
from loadbench.stats.recorder import Recorder
from loadbench.stats.summary import build_summary

MS = 1_000_000


def rec(seq, *, cand="a", status=OK, intended_ms=0, sent_ms=None, first_ms=None, done_ms=None, in_window=True,
        error_class=None, out_tokens=0, itl_us=(), cost=0.0):
    r = RequestResult(seq=seq, candidate=cand, item_id=f"i{seq}", item_index=seq, epoch=0,
                      intended_ns=intended_ms * MS, in_window=in_window, status=status, error_class=error_class)
    if sent_ms is not None:
        r.sent_ns = sent_ms * MS
    if first_ms is not None:
        r.first_token_ns = first_ms * MS
        r.first_content_ns = first_ms * MS
    if done_ms is not None:
        r.done_ns = done_ms * MS
    r.output_tokens = out_tokens
    r.itl_us = list(itl_us)
    r.cost_usd = cost
    r.token_source = "server"
    return r


def sample_records():
    return [
        rec(0, intended_ms=0, sent_ms=0, first_ms=50, done_ms=100, in_window=False, out_tokens=3, itl_us=[25_000, 25_000]),
        rec(1, intended_ms=100, sent_ms=101, first_ms=150, done_ms=300, out_tokens=4, itl_us=[50_000] * 3, cost=0.01),
        rec(2, intended_ms=200, sent_ms=210, first_ms=260, done_ms=400, out_tokens=2, itl_us=[100_000], cost=0.02),
        rec(3, intended_ms=300, sent_ms=300, done_ms=310, status=ERROR, error_class="http_5xx"),
        rec(4, intended_ms=400, status=DROPPED, error_class="dropped"),
        rec(5, intended_ms=500, sent_ms=500, done_ms=900, status=CANCELLED, error_class="cancelled"),
        rec(1, cand="b", intended_ms=100, sent_ms=100, first_ms=120, done_ms=200, out_tokens=2, itl_us=[10_000]),
    ]


def summarize_records(records):
    recorder = Recorder(["a", "b"])
    for r in records:
        recorder(r)
    recorder.flush()
    return build_summary(recorder, {"run_id": "r1", "load": {"mode": "open", "warmup_s": 0.1}}, {"stop_reason": "completed"})


def test_counts_obey_the_accounting_identities():
    s = summarize_records(sample_records())["candidates"]["a"]
    req = s["requests"]
    assert req == {"scheduled": 6, "sent": 5, "ok": 3, "errors": {"http_5xx": 1}, "error_total": 1, "dropped": 1, "cancelled": 1,
                   "retries": 0}
    assert req["scheduled"] == req["sent"] + req["dropped"]
    assert req["sent"] == req["ok"] + req["error_total"] + req["cancelled"]
    assert s["window"]["scheduled"] == 5 and s["window"]["ok"] == 2


def test_latency_metrics_come_from_the_window_only():
    s = summarize_records(sample_records())["candidates"]["a"]
    assert s["latency_s"]["count"] == 2
    assert s["latency_s"]["max"] == pytest.approx(0.200, rel=1e-3)  # 400 - 200
    assert s["service_time_s"]["max"] == pytest.approx(0.199, rel=1e-3)  # 300 - 101
    assert s["ttft_s"]["min"] == pytest.approx(0.050, rel=1e-3)
    assert s["itl_s"]["count"] == 4  # 3 + 1 gaps, warm-up excluded
    assert s["tpot_s"]["count"] == 2
    assert s["tpot_s"]["max"] == pytest.approx(0.100, rel=1e-3)  # 100 ms / (2 - 1)
    assert s["schedule_lag_s"]["count"] == 4  # every sent request in the window, errors included
    assert s["schedule_lag_s"]["max"] == pytest.approx(0.010, rel=1e-3)
    assert s["cost_usd"]["total"] == pytest.approx(0.03)
    assert s["error_ratio"] == pytest.approx(1 / 4)


def test_offered_and_achieved_rates():
    recorder = Recorder(["a"])
    for i in range(101):
        recorder(rec(i, intended_ms=i * 10, sent_ms=i * 20, first_ms=i * 20 + 1, done_ms=i * 20 + 2))
    recorder.flush()
    s = build_summary(recorder, {"load": {"mode": "open"}}, {})["candidates"]["a"]
    assert s["offered_rate_qps"] == pytest.approx(100.0)
    assert s["achieved_rate_qps"] == pytest.approx(50.0)


def test_results_log_round_trip_and_torn_line(tmp_path: Path):
    records = sample_records()
    log = ResultsLog(tmp_path / "results.jsonl")
    for r in records:
        log(r)
    log.close()
    direct = summarize_records(records)
    (tmp_path / "run.json").write_text('{"run_id": "r1", "load": {"mode": "open", "warmup_s": 0.1}, "candidates": {"a": {}, "b": {}}}')
    rebuilt = rebuild_summary(tmp_path)
    assert rebuilt.records == len(records) and rebuilt.skipped == []
    strip = lambda cands: {n: {k: v for k, v in c.items() if k not in ("goodput", "slo")} for n, c in cands.items()}
    assert strip(rebuilt.summary["candidates"]) == strip(direct["candidates"])
    # a crash mid-write leaves a torn last line: reported, skipped, not fatal
    with open(tmp_path / "results.jsonl", "ab") as f:
        f.write(b'{"seq": 9, "candidate": "a", "ite')
    rebuilt = rebuild_summary(tmp_path)
    assert rebuilt.records == len(records)
    assert len(rebuilt.skipped) == 1 and "torn" in rebuilt.skipped[0][1]
    lines = list(iter_results(tmp_path / "results.jsonl"))
    assert lines[-1][1] is None


def test_interval_histograms_are_written_to_the_hlog(tmp_path: Path):
    from loadbench.stats.hdr import HlogWriter, read_hlog

    with open(tmp_path / "h.hlog", "w") as f:
        recorder = Recorder(["a", "b"], HlogWriter(f))
        for r in sample_records()[:3]:
            recorder(r)
        recorder.flush(1.0)
        recorder(sample_records()[-1])
        recorder.flush(2.0)
    rows = read_hlog(str(tmp_path / "h.hlog"))
    tags = {(t, s) for t, s, _, _ in rows}
    assert ("a.latency", 0.0) in tags and ("b.latency", 1.0) in tags
    a_latency = next(h for t, s, _, h in rows if t == "a.latency")
    assert a_latency.get_total_count() == 3  # the interval log keeps warm-up too, for re-cutting
