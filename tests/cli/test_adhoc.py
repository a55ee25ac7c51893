"""`loadbench load`: one endpoint from the command line, and the bench-peers result contract."""

import json
import subprocess
import sys

import pytest

from loadbench.cli.adhoc import adhoc_scenario, contract
from loadbench.config.errors import ConfigError
from tests.conftest import ROOT


def test_closed_loop_ignores_the_rate_and_bad_values_are_config_errors():
    r = adhoc_scenario("http://127.0.0.1:9/v1", mode="closed", rate=float("inf"), concurrency=4, duration_s=1, stream=True,
                       model="m", prompt_words=2, max_tokens=None, timeout_s=5, max_in_flight=64, warmup_s=0)
    assert r.scenario.load.mode == "closed" and r.scenario.load.concurrency == 4
    with pytest.raises(ConfigError, match=r"load\.duration_s"):
        adhoc_scenario("http://127.0.0.1:9/v1", mode="open", rate=5, concurrency=1, duration_s=-1, stream=False, model="m",
                       prompt_words=2, max_tokens=None, timeout_s=5, max_in_flight=64, warmup_s=0)


def test_load_against_a_simulator_writes_the_contract(tmp_path):
    sim = subprocess.Popen([sys.executable, "-m", "loadbench", "sim", "--port", "0", "--profile", "instant"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = json.loads(sim.stdout.readline())["port"]
        out = tmp_path / "c.json"
        proc = subprocess.run([sys.executable, "-m", "loadbench", "load", f"http://127.0.0.1:{port}/v1", "--rate", "40", "--duration", "2",
                               "--stream", "--json-out", str(out), "--out", str(tmp_path / "runs")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        c = json.loads(out.read_text())
        assert c["n_ok"] == 80 and c["n_err"] == 0
        assert c["sent_rps"] == pytest.approx(40, rel=0.01)
        for key in ("lat", "ttft", "itl", "tpot"):
            assert set(c[key]) == {"mean", "p50", "p90", "p99", "max"}
        assert c["lat"]["p50"] < 100 and c["chunks_per_s"] > 40 and c["cpu_s"] > 0
        # says only what was measured: where the run is, no goodput (nothing scored), no pick of one
        run_dirs = list((tmp_path / "runs").iterdir())
        assert f"run directory: {run_dirs[0]}" in proc.stdout
        assert "goodput" not in proc.stdout and "Recommend" not in proc.stdout
    finally:
        sim.terminate()
        sim.wait(10)


def test_contract_units_are_milliseconds():
    s = {"outcome": {"duration_s": 2.0}, "candidates": {"target": {
        "requests": {"ok": 10, "error_total": 1, "errors": {"timeout": 1}}, "throughput_rps": 5.0, "achieved_rate_qps": 5.5,
        "latency_s": {"count": 10, "mean": 0.5, "p50": 0.4, "p90": 0.6, "p99": 0.9, "max": 1.0},
        "ttft_s": {"count": 10, "mean": 0.1, "p50": 0.1, "p90": 0.1, "p99": 0.1, "max": 0.1},
        "itl_s": {"count": 30, "mean": 0.01, "p50": 0.01, "p90": 0.01, "p99": 0.01, "max": 0.01},
        "tpot_s": {"count": 0}, "schedule_lag_s": {"count": 11, "mean": 0.001, "p50": 0.001, "p90": 0.001, "p99": 0.002, "max": 0.002}}}}
    c = contract(s, 1.5)
    assert c["lat"]["p99"] == pytest.approx(900) and c["tpot"] is None and c["chunks_per_s"] == pytest.approx(20)
    assert c["errors"] == {"timeout": 1} and c["cpu_s"] == 1.5


@pytest.mark.parametrize("lag_p99_s, lag_max_s, cpu, expected", [
    (0.0004, 0.002, 0.3, None),
    (0.084, 1.05, 0.5, "lagged 84.0 ms at p99 (max 1050 ms)"),
    (0.001, 0.003, 0.97, "97% of a core"),
])
def test_load_says_when_the_client_was_the_bottleneck(lag_p99_s, lag_max_s, cpu, expected):
    from loadbench.cli.run_cmd import client_bottleneck_notice

    summary = {"client": {"event_loop_lag_s": {"p99": lag_p99_s, "max": lag_max_s}}, "outcome": {"loop_cpu_ratio": cpu}}
    notice = client_bottleneck_notice(summary)
    if expected is None:
        assert notice is None
    else:
        assert "client was the bottleneck" in notice and expected in notice and "high" in notice
