"""Runs killed at random moments: signals leave a complete log and summary; SIGKILL leaves a log
that `loadbench report` recovers (a torn last line is skipped, never fatal)."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

DEMO = ROOT / "scenarios" / "demo.yaml"


def start(tmp_path, duration=60):
    return subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", str(DEMO), "--duration", str(duration), "--set", "load.warmup_s=0",
         "--set", "load.rate_qps=20", "--set", "load.grace_s=1", "--out", str(tmp_path), "--no-metrics", "--fail-on", "none"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_log(tmp_path, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        logs = list(tmp_path.glob("*/results.jsonl"))
        if logs and logs[0].stat().st_size > 0:
            return logs[0].parent
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.05)
    raise AssertionError("no results log appeared")


def identities(summary):
    for c in summary["candidates"].values():
        req = c["requests"]
        assert req["scheduled"] == req["sent"] + req["dropped"]
        assert req["sent"] == req["ok"] + req["error_total"] + req["cancelled"]


@pytest.mark.parametrize("sig, delay", [(signal.SIGINT, random.Random(1).uniform(0.2, 2.5)),
                                        (signal.SIGTERM, random.Random(2).uniform(0.2, 2.5))])
def test_signal_at_a_random_moment(tmp_path, sig, delay):
    proc = start(tmp_path)
    try:
        run_dir = wait_for_log(tmp_path, proc)
        time.sleep(delay)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads((run_dir / "summary.json").read_text())
    identities(summary)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == sum(c["requests"]["scheduled"] for c in summary["candidates"].values())
    assert all(json.loads(line)["candidate"] for line in lines)  # every line whole


@pytest.mark.parametrize("delay", [random.Random(3).uniform(1.5, 3.0), random.Random(4).uniform(1.5, 3.0)])
def test_sigkill_then_report_recovers(tmp_path, delay):
    proc = start(tmp_path)
    try:
        run_dir = wait_for_log(tmp_path, proc)
        time.sleep(delay)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run_dir / "summary.json").exists()
    # the simulators notice their driver is gone and exit by themselves
    time.sleep(1.5)
    leftovers = subprocess.run(["pgrep", "-f", f"--parent-pid {proc.pid}"], capture_output=True, text=True).stdout.split()
    assert leftovers == []
    # make the worst case certain: a torn last line, as a crash mid-write leaves it
    log = run_dir / "results.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"seq": 999999, "candidate": "small-fast", "item_id": "x", "inten')
    rep = subprocess.run([sys.executable, "-m", "loadbench", "report", str(run_dir), "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert rep.returncode == 0, rep.stderr
    assert "torn last line" in rep.stderr and "Traceback" not in rep.stderr
    summary = json.loads(rep.stdout)
    identities(summary)
    whole = len(log.read_text().splitlines()) - 1
    assert summary["outcome"]["results_lines"] == whole > 0
    assert (run_dir / "summary.json").exists() and (run_dir / "report.html").exists()
