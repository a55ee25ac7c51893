"""The CLI end to end, as a user runs it: real processes, real simulators, real files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.yaml"


def loadbench(*args, cwd=None, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "loadbench", *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def only_run_dir(out: Path) -> Path:
    (run_dir,) = list(out.iterdir())
    return run_dir


def rounded(obj):
    """Floats summed in another order differ in the last bits; compare to 10 significant digits."""
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v) for v in obj]
    return obj


def check_identities(summary):
    for name, c in summary["candidates"].items():
        req = c["requests"]
        assert req["scheduled"] == req["sent"] + req["dropped"], name
        assert req["sent"] == req["ok"] + req["error_total"] + req["cancelled"], name


def test_demo_scenario_end_to_end_and_report_rebuilds_it(tmp_path):
    proc = loadbench("run", str(DEMO), "--duration", "4", "--set", "load.warmup_s=1", "--out", str(tmp_path), "--quiet", "--fail-on", "none")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "small-fast" in proc.stdout and "large-accurate" in proc.stdout and "latency p95" in proc.stdout
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["candidates"]) == {"small-fast", "large-accurate"}
    check_identities(summary)
    for c in summary["candidates"].values():
        assert c["requests"]["ok"] > 10 and c["requests"]["error_total"] == 0
        for key in ("latency_s", "service_time_s", "ttft_s", "itl_s", "tpot_s", "schedule_lag_s"):
            assert set(c[key]) >= {"p50", "p90", "p95", "p99", "p999", "max", "mean", "count"}
        assert c["tokens"]["source"] == "server" and c["cost_usd"]["total"] > 0
    small, large = summary["candidates"]["small-fast"], summary["candidates"]["large-accurate"]
    # the simulated deployments really differ
    assert large["latency_s"]["p50"] > small["latency_s"]["p50"]
    assert large["cost_usd"]["per_request"] > small["cost_usd"]["per_request"]
    # one results line per scheduled request, same schedule for both
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == sum(c["requests"]["scheduled"] for c in summary["candidates"].values())
    per = {}
    for row in rows:
        per.setdefault(row["candidate"], set()).add((row["seq"], row["intended_ns"], row["item_id"]))
    assert per["small-fast"] == per["large-accurate"]
    assert (run_dir / "histograms.hlog").read_text().count("Tag=small-fast.latency") >= 3
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["outcome"]["stop_reason"] == "completed"

    rep = loadbench("report", str(run_dir), "--json")
    assert rep.returncode == 0, rep.stderr
    rebuilt = json.loads(rep.stdout)
    for name in summary["candidates"]:
        a, b = summary["candidates"][name], rebuilt["candidates"][name]
        assert rounded(a) == rounded(b)
    assert rounded(summary["comparisons"]) == rounded(rebuilt["comparisons"])


def test_closed_loop_mode_is_labelled(tmp_path):
    proc = loadbench("run", str(DEMO), "--requests", "12", "--set", "load.mode=closed", "--set", "load.concurrency=3",
                     "--set", "load.warmup_s=0", "--candidate", "small-fast", "--out", str(tmp_path), "--quiet", "--fail-on", "none")
    assert proc.returncode == 0, proc.stderr
    assert "closed-loop" in proc.stdout
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    assert summary["mode"] == "closed-loop"
    assert summary["candidates"]["small-fast"]["requests"]["ok"] == 12


@pytest.mark.parametrize(
    "args, expect",
    [
        (["run", "nope.yaml"], "nope.yaml: scenario file not found"),
        (["run", str(DEMO), "--set", "load.rate_qps=-3"], "load.rate_qps"),
        (["run", str(DEMO), "--set", "load.arival=poisson"], "did you mean 'arrival'"),
        (["run", str(DEMO), "--candidate", "nobody"], "unknown candidate(s) nobody"),
        (["run", str(DEMO), "--set", "candidates.0.sim=huge"], "unknown simulator profile 'huge'"),
        (["run", str(DEMO), "--set", "dataset=missing.jsonl"], "dataset: missing.jsonl: file not found (tried "),
        (["report", "/nonexistent-dir"], "not a directory"),
        (["sim", "--profile", "nope"], "unknown profile"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, expect):
    proc = loadbench(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert expect in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_api_key_env_and_unreachable_endpoint_exit_2(tmp_path):
    scenario = tmp_path / "s.yaml"
    data = ROOT / "scenarios" / "data" / "support_intents.jsonl"
    scenario.write_text(f"""
dataset: {data}
candidates:
  - name: remote
    base_url: http://127.0.0.1:9/v1
    model: m
    api_key_env: LOADBENCH_TEST_KEY_UNSET
load: {{rate_qps: 1, requests: 1}}
""")
    env = {k: v for k, v in os.environ.items() if k != "LOADBENCH_TEST_KEY_UNSET"}
    proc = loadbench("run", str(scenario), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2 and "LOADBENCH_TEST_KEY_UNSET is not set" in proc.stderr
    env["LOADBENCH_TEST_KEY_UNSET"] = "sk-abc-very-secret"
    proc = loadbench("run", str(scenario), "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2 and "cannot reach http://127.0.0.1:9/v1" in proc.stderr
    assert "sk-abc-very-secret" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists()  # nothing was sent, no run directory


def test_sigint_stops_gracefully_and_keeps_everything(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", str(DEMO), "--duration", "60", "--set", "load.warmup_s=0",
         "--set", "load.grace_s=0.5", "--out", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not any(tmp_path.glob("*/results.jsonl")):
            time.sleep(0.1)
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopped by SIGINT" in out
    run_dir = only_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    check_identities(summary)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == sum(c["requests"]["scheduled"] for c in summary["candidates"].values()) > 10
    assert summary["outcome"]["stop_reason"] == "stopped by SIGINT"
    # the simulators were stopped with the run: no child process is left
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children == []


def test_run_against_a_baseline_exits_4_on_a_regression(tmp_path, capsys):
    import json
    from pathlib import Path

    from loadbench.cli.main import main

    dataset = Path(__file__).resolve().parents[2] / "scenarios" / "data" / "support_intents.jsonl"
    scenario = tmp_path / "s.yaml"
    # latencies of ~150 ms: a busy machine's few milliseconds cannot make the same deployment's p95 regress
    scenario.write_text(f"dataset: {dataset}\ncandidates: [{{name: a, sim: small-fast, sim_params: {{prefill_base_s: 0.15, "
                        "decode_per_token_s: 0.0005}}]\nload: {arrival: constant, rate_qps: 100, requests: 300, seed: 2}\n")
    # this test is about the regression verdict, not the client's own timing: a busy CI machine must not make it exit 3
    common = ["--no-metrics", "--quiet", "--fail-on", "none", "--set", "validity.max_schedule_lag_p99_s=1",
              "--set", "validity.max_event_loop_lag_p99_s=1", "--set", "validity.max_loop_cpu_ratio=10"]
    assert main(["run", str(scenario), "--out", str(tmp_path / "base"), *common]) == 0
    (base,) = list((tmp_path / "base").iterdir())
    assert main(["run", str(scenario), "--out", str(tmp_path / "same"), "--baseline", str(base), *common]) == 0
    assert "no regression" in capsys.readouterr().out
    code = main(["run", str(scenario), "--out", str(tmp_path / "worse"), "--baseline", str(base), *common,
                 "--set", "candidates.a.sim_params.accuracy=0.3"])
    out = capsys.readouterr().out
    assert code == 4 and "REGRESSED in accuracy" in out
    (worse,) = list((tmp_path / "worse").iterdir())
    assert json.loads((worse / "summary.json").read_text())["regression"]["regressed"] == ["a"]
    assert main(["run", str(scenario), "--baseline", str(tmp_path / "nope"), "--no-metrics"]) == 2
