"""A real Prometheus scrapes a live run with two candidates; every dashboard query returns data
for each candidate; the Pushgateway receives the end-of-run push and Prometheus reads it there."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.views.test_dashboards import dashboards, panels, substitute

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
pytestmark = pytest.mark.skipif(
    not (PROMETHEUS and PUSHGATEWAY) and not os.environ.get("CI"),
    reason="needs Debian's prometheus and prometheus-pushgateway (installed by .ci/run)",
)
CANDIDATES = {"small-fast", "large-accurate"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_http(url, deadline_s=30):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def query(prom, expr, at):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    body = get_json(url)
    assert body["status"] == "success", body
    return body["data"]["result"]


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboards_against_a_live_run(tmp_path: Path):
    assert PROMETHEUS and PUSHGATEWAY, "install prometheus and prometheus-pushgateway (see .ci/run)"
    metrics_port, prom_port, push_port = free_port(), free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: loadbench-direct
    static_configs: [{{targets: ["127.0.0.1:{metrics_port}"]}}]
  - job_name: pushgateway
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{push_port}"]}}]
""")
    procs = []
    try:
        push = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{push_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(push)
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)
        wait_http(f"http://127.0.0.1:{push_port}/metrics")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        started = time.time()
        run = subprocess.run(
            [sys.executable, "-m", "loadbench", "run", str(ROOT / "scenarios" / "demo.yaml"), "--duration", "12",
             "--set", "load.warmup_s=2", "--set", "load.rate_qps=10", "--out", str(tmp_path / "runs"), "--quiet", "--json", "--fail-on", "none",
             "--metrics-port", str(metrics_port), "--metrics-linger", "6", "--pushgateway", f"http://127.0.0.1:{push_port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=180,
        )
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        run_id = summary["run_id"]
        assert summary["outcome"].get("pushed_to")
        at = time.time() - 3  # while the run was still being scraped directly (it lingered 6 s)
        # a sweep's result arrives through the Pushgateway too (the sweep itself is tested in test_sweep)
        from loadbench.views.prometheus import push_sweep

        push_sweep(f"http://127.0.0.1:{push_port}", {"sweep_id": "sweep-e2e", "scenario": "demo", "candidates": {
            name: {"max_sustainable_qps": 12.5, "capacity": {"low_qps": 12.5, "estimate_qps": 14.0, "high_qps": 16.0}}
            for name in CANDIDATES}})
        time.sleep(2.5)  # a scrape of the Pushgateway
        range_s = max(5, int(at - started))

        # every PromQL expression of every panel returns data for each candidate
        checked = 0
        for name, dash in dashboards().items():
            for p in panels(dash):
                for t in p["targets"]:
                    expr = substitute(t["expr"], run_id=run_id, rate="5s", range_s=range_s)
                    result = query(prom_port, expr, time.time() if "max_sustainable" in expr or "sweep_capacity" in expr else at)
                    assert result, f"{name} / {p['title']}: no data for {expr}"
                    if "candidate" in expr.split("by (", 1)[-1].split(")", 1)[0] or "by (" not in expr:
                        seen = {r["metric"].get("candidate") for r in result}
                        if "loadbench_event_loop_lag" not in expr and "loadbench_run_phase" not in expr:
                            assert seen >= CANDIDATES, f"{p['title']}: candidates {seen} for {expr}"
                    checked += 1
        assert checked > 30

        # the values Prometheus saw agree with the run's own counts
        sent = query(prom_port, f'loadbench_requests_sent_total{{run_id="{run_id}", job="loadbench-direct"}}', at)
        by_cand = {r["metric"]["candidate"]: float(r["value"][1]) for r in sent}
        for cand in CANDIDATES:
            assert by_cand[cand] == summary["candidates"][cand]["requests"]["sent"]

        # the Pushgateway holds the final push, grouped by run_id, and Prometheus reads it there
        pushed = urllib.request.urlopen(f"http://127.0.0.1:{push_port}/metrics", timeout=5).read().decode()
        assert f'run_id="{run_id}"' in pushed and "loadbench_requests_sent_total" in pushed
        deadline = time.time() + 15
        via_push = []
        while time.time() < deadline and not via_push:
            via_push = query(prom_port, f'loadbench_requests_sent_total{{run_id="{run_id}", job="loadbench"}}', time.time())
            time.sleep(0.5)
        assert {r["metric"]["candidate"] for r in via_push} == CANDIDATES
        for r in via_push:
            assert float(r["value"][1]) == summary["candidates"][r["metric"]["candidate"]]["requests"]["sent"]
    finally:
        for proc in procs:
            stop(proc)
