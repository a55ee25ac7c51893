"""SLO parsing and evaluation tables; goodput counts correctness; validity; decision; exit codes."""

import pytest

from loadbench.config.slo_clauses import parse_clause, parse_clauses
from loadbench.engine.outcome import exit_code
from loadbench.pacing.records import ERROR, OK, RequestResult
from loadbench.stats.decision import decide, pareto_frontier
from loadbench.stats.hdr import new_histogram, record_batch
from loadbench.stats.quality import QualityAggregator
from loadbench.stats.slo import evaluate, request_check
from loadbench.stats.validity import ValidityLimits, assess

MS = 1_000_000


def latency_hists(*groups: tuple[int, float]) -> dict:
    """{"latency": HDR histogram (µs)} from (count, seconds) groups."""
    hist = new_histogram()
    for count, seconds in groups:
        record_batch(hist, [int(seconds * 1e6)] * count)
    return {"latency": hist}


@pytest.mark.parametrize(
    "text, metric, stat, op, threshold",
    [
        ("latency p95 <= 2s", "latency", "p95", "<=", 2.0),
        ("ttft p95 <= 500ms", "ttft", "p95", "<=", 0.5),
        ("tpot p99 < 50ms", "tpot", "p99", "<", 0.05),
        ("itl p50 <= 800us", "itl", "p50", "<=", 0.0008),
        ("latency <= 1.5s", "latency", "p95", "<=", 1.5),
        ("schedule_lag p99 <= 5ms", "schedule_lag", "p99", "<=", 0.005),
        ("error_ratio <= 0.01", "error_ratio", "value", "<=", 0.01),
        ("error_ratio <= 1%", "error_ratio", "value", "<=", 0.01),
        ("accuracy >= 0.8", "accuracy", "value", ">=", 0.8),
        ("accuracy ci_low >= 0.75", "accuracy", "ci_low", ">=", 0.75),
        ("cost_per_task <= $0.002", "cost_per_task", "value", "<=", 0.002),
        ("cost_per_correct <= 0.01", "cost_per_correct", "value", "<=", 0.01),
        ("latency p99.9 <= 5s", "latency", "p99.9", "<=", 5.0),
        ("latency p999 <= 5s", "latency", "p99.9", "<=", 5.0),
        ("latency p99.99 <= 5s", "latency", "p99.99", "<=", 5.0),
        ("ttft p42 <= 1s", "ttft", "p42", "<=", 1.0),
        ("latency max <= 10s", "latency", "max", "<=", 10.0),
    ],
)
def test_parse(text, metric, stat, op, threshold):
    c = parse_clause(text)
    assert (c.metric, c.stat, c.op) == (metric, stat, op)
    assert c.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    "text, message",
    [
        ("latency p95 <= 2", "give the unit"),
        ("latency p100 <= 2s", "unknown statistic"),
        ("speed p95 <= 2s", "unknown metric"),
        ("accuracy >= 80ms", "not a time"),
        ("latency p95 2s", "cannot read"),
        ("latency p95 <= 5%", "time unit"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_clause(text)


def cand(p95=1.0, count=500, error_ratio=0.0, acc=0.9, ci_low=0.85, cost=0.001, per_correct=0.002):
    return {"latency_s": {"p95": p95, "p99": p95 * 1.5, "count": count}, "ttft_s": {"p95": 0.2, "count": count},
            "error_ratio": error_ratio, "window": {"sent": count, "dropped": 0},
            "accuracy": {"value": acc, "ci_low": ci_low, "ci_high": 0.95, "attempted_value": acc, "n": count, "pass": int(acc * count)},
            "cost_usd": {"per_request": cost, "per_correct": per_correct}, "schedule_lag_s": {"p99": 0.001},
            "offered_rate_qps": 10.0, "achieved_rate_qps": 10.0}


def test_evaluate_lists_failing_clauses_with_measured_values_and_sufficiency():
    clauses = parse_clauses(["latency p95 <= 2s", "latency p99 <= 1s", "accuracy >= 0.95", "error_ratio <= 0.01"])
    out = evaluate(clauses, cand(p95=1.0, count=500), latency_hists((470, 0.5), (15, 1.0), (15, 1.5)))
    assert not out["ok"] and out["verdict"] == "fail"
    assert out["failing"] == ["latency p99 <= 1s", "accuracy >= 0.95"]
    by = {r["clause"]: r for r in out["clauses"]}
    assert by["latency p99 <= 1s"]["measured"] == pytest.approx(1.5, rel=1e-3)
    assert by["latency p95 <= 2s"]["verdict"] == "pass" and by["error_ratio <= 0.01"]["verdict"] == "pass"
    assert by["latency p99 <= 1s"]["ci_low"] > 1.0  # the whole interval is over the bound
    assert by["latency p95 <= 2s"]["sufficient"] is True and by["latency p99 <= 1s"]["sufficient"] is False
    missing = evaluate(parse_clauses(["ttfc p95 <= 1s"]), cand(), {"ttfc": new_histogram()})
    assert not missing["ok"] and missing["clauses"][0]["note"] == "not measured"
    assert missing["verdict"] == "inconclusive"


@pytest.mark.parametrize("clause, n, verdict", [
    ("latency p95 <= 5s", 300, "pass"),
    ("latency p95 <= 90ms", 300, "fail"),
    ("latency p99.9 <= 5s", 300, "inconclusive"),
    ("latency p95 <= 5s", 30, "inconclusive"),
    ("latency max <= 5s", 30, "pass"),
    ("latency mean <= 101ms", 300, "pass"),
])
def test_three_valued_verdicts_at_about_100ms(clause, n, verdict):
    import numpy as np

    rng = np.random.default_rng(1)
    hist = new_histogram()
    record_batch(hist, (rng.uniform(0.095, 0.105, n) * 1e6).astype(int))
    out = evaluate(parse_clauses([clause]), cand(count=n), {"latency": hist})
    r = out["clauses"][0]
    assert r["verdict"] == verdict and out["verdict"] == verdict
    if verdict == "inconclusive":
        assert r["more_samples"] and r["more_samples"] > 0 and out["more_samples"] == r["more_samples"]
        assert r["ci_high"] is None  # no sample far enough out to bound it
    else:
        assert r["ci_low"] is not None and r["ci_high"] is not None


def rec(seq, status=OK, latency_ms=100, verdict="pass", ttft_ms=50, in_window=True):
    r = RequestResult(seq=seq, candidate="a", item_id="i", item_index=0, epoch=0, intended_ns=seq * MS, in_window=in_window, status=status)
    r.sent_ns = seq * MS
    r.done_ns = seq * MS + latency_ms * MS
    r.first_token_ns = seq * MS + ttft_ms * MS
    r.verdict = verdict
    return r


def test_goodput_counts_only_on_time_and_correct_requests():
    check = request_check(parse_clauses(["latency p95 <= 500ms", "ttft p95 <= 100ms", "accuracy >= 0.5"]))
    q = QualityAggregator(["a"], [[]], check)
    records = [
        rec(0),  # good
        rec(1, verdict="fail"),  # on time but wrong
        rec(2, latency_ms=800),  # correct but late
        rec(3, ttft_ms=200),  # correct but slow first token
        rec(4, status=ERROR, verdict="skipped"),  # failed request counts against
        rec(5, verdict=None),  # no scorers: on time is enough
        rec(6, verdict="unscored"),  # correctness unknown: not counted as good
        rec(7, in_window=False),  # warm-up
    ]
    for r in records:
        q.add(r)
    g = q.goodput("a", window_span_s=2.0)
    assert (g["good"], g["attempted"]) == (2, 7)
    assert g["fraction"] == pytest.approx(2 / 7) and g["rps"] == pytest.approx(1.0)


def test_validity_gates():
    limits = ValidityLimits()
    good = {"mode": "open-loop", "client": {"event_loop_lag_s": {"p99": 0.001}}, "candidates": {"a": cand()}}
    assert assess(good, limits, 0.3)["valid"]
    starved = {"mode": "open-loop", "client": {"event_loop_lag_s": {"p99": 0.2}}, "candidates": {"a": cand()}}
    out = assess(starved, limits, 0.97)
    assert not out["valid"] and len(out["reasons"]) == 2
    slow = cand()
    slow["schedule_lag_s"] = {"p99": 0.05}
    slow["achieved_rate_qps"] = 9.0
    slow["window"]["dropped"] = 3
    out = assess({"mode": "open-loop", "client": {}, "candidates": {"a": slow}}, limits, None)
    assert not out["valid"] and len(out["candidates"]["a"]) == 3
    closed = {"mode": "closed-loop", "client": {}, "candidates": {"a": {**cand(), "achieved_rate_qps": 1.0}}}
    assert assess(closed, limits, None)["valid"]  # no offered rate to fall short of


def summary_of(**cands):
    return {"mode": "open-loop", "client": {}, "candidates": cands, "comparisons": [], "validity": {"valid": True, "candidates": {}, "reasons": []}}


def test_decision_ranks_slo_passing_candidates_by_objective_with_caveats():
    clauses = parse_clauses(["latency p95 <= 2s", "accuracy >= 0.8"])
    a, b, c = (cand(acc=0.85, per_correct=0.001, count=1000), cand(acc=0.92, per_correct=0.004, count=1000),
               cand(p95=3.0, per_correct=0.0005, count=1000))
    for x in (a, b, c):
        x["slo"] = evaluate(clauses, x, latency_hists((1000, x["latency_s"]["p95"])))
    s = summary_of(a=a, b=b, c=c)
    s["comparisons"] = [{"a": "a", "b": "b", "diff": -0.07, "ci_low": -0.12, "ci_high": -0.02, "p_value": 0.2, "n": 200}]
    d = decide(s)
    assert d["recommended"] == "a" and d["ranking"] == ["a", "b"]
    assert "c" in d["failing"] and "latency p95 <= 2s" in d["failing"]["c"][0]
    assert any("not significant at n=200" in x for x in d["caveats"])
    assert decide(s, "accuracy")["recommended"] == "b"


def test_no_recommendation_from_an_invalid_run():
    s = summary_of(a=cand())
    s["validity"] = {"valid": False, "reasons": ["event-loop lag too high"], "candidates": {}}
    d = decide(s)
    assert d["recommended"] is None and "invalid" in d["summary"]


def test_pareto_frontier():
    pts = {"a": cand(acc=0.9, p95=1.0, cost=0.001), "b": cand(acc=0.8, p95=1.2, cost=0.002), "c": cand(acc=0.95, p95=2.0, cost=0.003)}
    assert pareto_frontier(pts) == ["a", "c"]


@pytest.mark.parametrize(
    "oks, valid, fail_on, code",
    [
        ([True, True], True, "any", 0),
        ([True, False], True, "any", 1),
        ([True, False], True, "all", 0),
        ([False, False], True, "all", 1),
        ([False, False], True, "none", 0),
        ([True, True], False, "any", 3),
        ([None, None], True, "any", 0),  # no SLO
    ],
)
def test_exit_codes(oks, valid, fail_on, code):
    s = {"validity": {"valid": valid}, "candidates": {f"c{i}": {"slo": None if ok is None else {"ok": ok}} for i, ok in enumerate(oks)}}
    assert exit_code(s, fail_on) == code


@pytest.mark.slow
async def test_a_blocked_sending_loop_makes_the_run_invalid():
    """The driver starved (its loop blocked by work on it): schedule lag and loop lag say so."""
    import asyncio
    import time as _time

    import numpy as np

    from loadbench.pacing.clock import MonotonicClock
    from loadbench.pacing.pacer import ItemOrder
    from loadbench.pacing.runner import Lane, Plan, Runner
    from loadbench.stats.recorder import Recorder
    from loadbench.stats.summary import build_summary

    clock = MonotonicClock()

    async def hog(item_index, r, t0):
        r.sent_ns = clock.now_ns() - t0
        _time.sleep(0.03)  # CPU work on the sending loop: every later send is late
        r.done_ns = clock.now_ns() - t0

    recorder = Recorder(["a"])
    plan = Plan(offsets_ns=(np.arange(40) * 10 * MS).astype(np.int64), order=ItemOrder(1, 0), item_ids=["x"])
    await Runner(plan, [Lane("a", hog, 100)], recorder, clock, loop_lag_sink=recorder.record_loop_lag_us).run()
    recorder.flush()
    summary = build_summary(recorder, {"load": {"mode": "open"}}, {})
    out = assess(summary, ValidityLimits(), None)
    assert not out["valid"]
    assert any("schedule lag" in r for r in out["candidates"]["a"])
    assert any("below 99%" in r for r in out["candidates"]["a"])
    await asyncio.sleep(0)


@pytest.mark.slow
def test_cli_exit_3_when_the_run_is_invalid(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "loadbench", "run", str(ROOT / "scenarios" / "demo.yaml"), "--duration", "5",
                           "--set", "load.warmup_s=0", "--candidate", "small-fast", "--set", "validity.max_schedule_lag_p99_s=0.000001",
                           "--out", str(tmp_path), "--quiet", "--no-metrics"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "RUN INVALID" in proc.stdout and "No recommendation" in proc.stdout


def test_one_late_send_among_a_hundred_does_not_invalidate_a_run():
    limits = ValidityLimits()
    few = cand()
    few["schedule_lag_s"] = {"count": 104, "p50": 0.0002, "p90": 0.0004, "p99": 0.019}
    assert assess({"mode": "open-loop", "client": {}, "candidates": {"a": few}}, limits, None)["valid"]
    many = cand()
    many["schedule_lag_s"] = {"count": 5000, "p50": 0.0002, "p90": 0.0004, "p99": 0.019}
    out = assess({"mode": "open-loop", "client": {}, "candidates": {"a": many}}, limits, None)
    assert out["candidates"]["a"][0].startswith("schedule lag p99 19.0 ms")
    slow_few = cand()
    slow_few["schedule_lag_s"] = {"count": 104, "p50": 0.0002, "p90": 0.05, "p99": 0.2}
    out = assess({"mode": "open-loop", "client": {}, "candidates": {"a": slow_few}}, limits, None)
    assert out["candidates"]["a"][0].startswith("schedule lag p90 50.0 ms")


def test_session_and_task_pass_rates_are_slo_metrics():
    c = cand()
    c["sessions"] = {"sessions": {"pass_rate": 0.35, "pass_rate_ci": [0.21, 0.53], "passed": 11, "failed": 20},
                     "tasks": {"pass_rate": 0.8, "pass_rate_ci": [0.65, 0.9], "passed": 26, "failed": 6}}
    out = evaluate(parse_clauses(["session_pass_rate >= 0.5", "task_pass_rate ci_low >= 0.6"]), c)
    assert [r["ok"] for r in out["clauses"]] == [False, True]
    assert out["clauses"][0]["measured"] == 0.35 and out["clauses"][0]["n"] == 31
    assert evaluate(parse_clauses(["session_pass_rate >= 0.5"]), cand())["clauses"][0]["note"] == "not measured"


@pytest.mark.slow
def test_until_decided_stops_once_every_verdict_is_settled(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"q {i}", "target": "ok"}) + "\n" for i in range(10)))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"""
dataset: {data}
candidates: [{{name: wide, sim: instant, sim_params: {{slots: 1000, prefill_base_s: 0.01, filler_tokens: 1}}}}]
load: {{rate_qps: 60, warmup_s: 0.5, duration_s: 2, until_decided: true, max_duration_s: 40, check_interval_s: 1, seed: 2}}
slo: ["latency p95 <= 1s"]
""")
    proc = subprocess.run([sys.executable, "-m", "loadbench", "run", str(scenario), "--out", str(tmp_path / "runs"), "--quiet",
                           "--no-metrics", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    seq = s["outcome"]["sequential"]
    assert s["outcome"]["stop_reason"].startswith("decided")
    assert seq["looks_taken"] >= 1 and seq["decided_at_s"] < 20  # far short of the 40 s cap
    c = s["candidates"]["wide"]
    assert c["slo"]["verdict"] == "pass" and c["slo"]["confidence"] == pytest.approx(seq["per_look_confidence"])
    assert seq["looks_planned"] == 1 + 38 and seq["per_look_confidence"] == pytest.approx(1 - 0.05 / 39)
    assert c["window"]["sent"] < 60 * 30


def test_until_decided_needs_an_slo_and_a_cap(tmp_path):
    from loadbench.config.scenario import Load, Scenario

    with pytest.raises(ValueError, match="exactly one cap"):
        Load(rate_qps=1, until_decided=True)
    with pytest.raises(ValueError, match="until_decided"):
        Load(rate_qps=1, duration_s=5, max_duration_s=10)
    with pytest.raises(ValueError, match="give an slo"):
        Scenario(dataset="d", candidates=[{"name": "a", "sim": "instant"}],
                 load={"rate_qps": 1, "until_decided": True, "max_duration_s": 10})
