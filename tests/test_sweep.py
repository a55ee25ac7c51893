"""The sweep finds a simulated deployment's known capacity; projection arithmetic; the report renders."""

import json
import math
import subprocess
import sys

import pytest

from loadbench.sweep import Step, SweepConfig, knee, project, step_verdict
from tests.conftest import ROOT

# 4 batch slots x 0.1 s per request (one output token, no decode time) = 40 req/s exactly.
CAPACITY_QPS = 40.0


def capacity_scenario(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"question {i}", "target": "ok"}) + "\n" for i in range(20)))
    scenario = tmp_path / "capacity.yaml"
    scenario.write_text(f"""
name: capacity
dataset: {data}
candidates:
  - name: four-slots
    sim: instant
    sim_params: {{slots: 4, prefill_base_s: 0.1, filler_tokens: 1}}
load: {{arrival: constant, rate_qps: 1, duration_s: 5, warmup_s: 1, seed: 3}}
slo:
  - latency p95 <= 300ms
  - error_ratio <= 0.01
validity: {{max_schedule_lag_p99_s: 0.5}}
""")
    return scenario


def test_sweep_finds_the_known_capacity_within_15_percent(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "loadbench", "sweep", str(capacity_scenario(tmp_path)), "--rates", "20,32,48", "--refine", "2",
         "--confirm", "1", "--step-duration", "5", "--warmup", "1", "--peak-qps", "100", "--tasks-per-day", "100000",
         "--out", str(tmp_path / "out"), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    c = result["candidates"]["four-slots"]
    best = c["max_sustainable_qps"]
    assert best is not None and abs(best - CAPACITY_QPS) / CAPACITY_QPS <= 0.15, c["curve"]
    rates = [r["offered_qps"] for r in c["curve"]]
    assert 20 in rates and 32 in rates and 48 in rates and len(rates) >= 5  # ladder + bisection + confirmation
    failed = [r for r in c["curve"] if not r["passed"]]
    assert failed and all(r["offered_qps"] > CAPACITY_QPS * 0.95 for r in failed)
    assert c["projection"]["replicas"] == math.ceil(100 * 1.3 / best)
    (sweep_dir,) = list((tmp_path / "out").iterdir())
    for name in ("sweep.json", "report.md", "report.html"):
        assert (sweep_dir / name).exists()
    assert "max sustainable" in (sweep_dir / "report.md").read_text()


def step_summary(p95, acc=0.9, cost=0.001, slo_ok=True, achieved=10.0):
    return {"mode": "open-loop", "validity": {"valid": True, "reasons": [], "candidates": {}},
            "candidates": {"a": {"latency_s": {"p50": p95 / 2, "p90": p95, "p95": p95, "p99": p95, "count": 100},
                                 "ttft_s": {"p50": 0.1, "p95": 0.1, "p99": 0.1}, "schedule_lag_s": {"p99": 0.001},
                                 "slo": {"ok": slo_ok, "failing": [] if slo_ok else ["latency p95 <= 1s"]},
                                 "accuracy": {"value": acc}, "cost_usd": {"per_request": cost, "per_correct": cost / acc},
                                 "error_ratio": 0.0, "achieved_rate_qps": achieved, "throughput_rps": achieved}}}


def test_step_verdict_and_knee():
    assert step_verdict(step_summary(0.5), "a") == (True, [])
    ok, reasons = step_verdict(step_summary(2.0, slo_ok=False), "a")
    assert not ok and reasons == ["SLO: latency p95 <= 1s"]
    rows = [Step(r, 0, True, [], step_summary(p), "d").row("a") for r, p in ((5, 0.2), (10, 0.22), (20, 0.35), (30, 1.2))]
    assert knee(rows) == 20


@pytest.mark.parametrize("peak, headroom, best, replicas", [(100, 0.3, 40, 4), (10, 0.0, 40, 1), (79, 0.0, 40, 2)])
def test_projection(peak, headroom, best, replicas):
    step = Step(best, 0, True, [], step_summary(0.5, acc=0.8, cost=0.002), "d")
    p = project(step, "a", SweepConfig(peak_qps=peak, headroom=headroom, tasks_per_day=1000), {"replica_hour": 2.0})
    assert p["replicas"] == replicas
    assert p["api"]["cost_per_task"] == 0.002 and p["api"]["cost_per_correct"] == pytest.approx(0.0025)
    assert p["api"]["monthly_usd"] == pytest.approx(0.002 * 1000 * 30)
    assert p["self_hosted"]["monthly_usd"] == pytest.approx(replicas * 2.0 * 730)
    assert p["self_hosted"]["cost_per_task"] == pytest.approx(replicas * 2.0 * 730 / 30000)
