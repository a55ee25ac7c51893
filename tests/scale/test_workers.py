"""--workers: the schedule split over processes gives the records one process gives."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadbench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "scenarios" / "data" / "support_intents.jsonl"


def scenario(tmp_path, load, candidates="[{name: a, sim: small-fast}, {name: b, sim: instant}]"):
    path = tmp_path / "s.yaml"
    path.write_text(f"dataset: {DATASET}\ncandidates: {candidates}\nload: {load}\n")
    return path


def run_records(tmp_path, path, workers, *extra):
    out = tmp_path / f"w{workers}"
    code = main(["run", str(path), "--workers", str(workers), "--no-metrics", "--quiet", "--json", "--out", str(out),
                 "--fail-on", "none", "--set", "validity.max_schedule_lag_p99_s=1", "--set", "validity.max_loop_cpu_ratio=10", "--set", "validity.max_event_loop_lag_p99_s=1", *extra])
    assert code == 0
    (run_dir,) = list(out.iterdir())
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return rows, json.loads((run_dir / "summary.json").read_text())


def test_two_workers_send_the_same_schedule_with_the_same_results_as_one(tmp_path, capsys):
    path = scenario(tmp_path, "{arrival: poisson, rate_qps: 60, requests: 150, seed: 9}")
    one, s1 = run_records(tmp_path, path, 1)
    two, s2 = run_records(tmp_path, path, 2)
    capsys.readouterr()

    def key(rows):
        return sorted((r["candidate"], r["seq"], r["item_id"], r["intended_ns"], r["status"], r["verdict"], r["text"]) for r in rows)

    assert len(one) == len(two) == 300
    assert key(one) == key(two)
    assert len({r["seq"] for r in two if r["candidate"] == "a"}) == 150
    for name in ("a", "b"):
        c1, c2 = s1["candidates"][name], s2["candidates"][name]
        assert c1["requests"] == c2["requests"]
        assert c1["accuracy"]["pass"] == c2["accuracy"]["pass"]
        assert c2["latency_s"]["count"] == 150
    workers = s2["outcome"]["workers"]
    assert [w["worker"] for w in workers] == [0, 1] and sum(w["dispatched"] for w in workers) == 150
    assert all(w["failure"] is None for w in workers)


def test_closed_loop_users_and_request_budget_are_split_without_reusing_positions(tmp_path, capsys):
    path = scenario(tmp_path, "{mode: closed, concurrency: 5, requests: 101, seed: 2}", "[{name: b, sim: instant}]")
    rows, summary = run_records(tmp_path, path, 2)
    capsys.readouterr()
    seqs = [r["seq"] for r in rows]
    assert len(seqs) == 101 and len(set(seqs)) == 101
    assert summary["candidates"]["b"]["requests"]["ok"] == 101


def test_sigint_to_the_coordinator_stops_every_worker_and_keeps_what_was_collected(tmp_path):
    path = scenario(tmp_path, "{arrival: constant, rate_qps: 50, duration_s: 60, seed: 1}", "[{name: b, sim: instant}]")
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "run", str(path), "--workers", "2", "--no-metrics", "--quiet",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = list(out.glob("*/results.jsonl"))
            if logs and logs[0].stat().st_size > 20_000:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    (run_dir,) = list(out.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = (run_dir / "results.jsonl").read_text().splitlines()
    assert summary["outcome"]["stop_reason"].startswith("stopped by SIGINT")
    assert summary["outcome"]["results_lines"] == len(rows) > 20
    for w in summary["outcome"]["workers"]:
        with pytest.raises(ProcessLookupError):
            os.kill(w["pid"], 0)


def test_bad_workers_value_exits_2(tmp_path, capsys):
    path = scenario(tmp_path, "{arrival: constant, rate_qps: 5, requests: 5}")
    assert main(["run", str(path), "--workers", "zero", "--no-metrics"]) == 2
    assert "--workers" in capsys.readouterr().err
