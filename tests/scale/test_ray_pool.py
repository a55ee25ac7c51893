"""--ray: the same partitions as --workers on Ray actors of a local Ray cluster."""

import json
import os
from pathlib import Path

import pytest

from loadbench.cli.main import main

if os.environ.get("CI"):
    import ray  # the test extra installs it: in CI a missing Ray is a failure, not a skip
else:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")

DATASET = Path(__file__).resolve().parents[2] / "scenarios" / "data" / "support_intents.jsonl"


def records(tmp_path, path, *extra):
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    code = main(["run", str(path), "--no-metrics", "--quiet", "--json", "--out", str(out), "--fail-on", "none",
                 "--set", "validity.max_schedule_lag_p99_s=1", "--set", "validity.max_loop_cpu_ratio=10",
                 "--set", "validity.max_event_loop_lag_p99_s=1", *extra])
    assert code == 0
    (run_dir,) = list(out.iterdir())
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return rows, json.loads((run_dir / "summary.json").read_text())


def test_ray_actors_send_the_same_schedule_with_the_same_results_as_one_process(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(f"dataset: {DATASET}\ncandidates: [{{name: a, sim: small-fast}}]\n"
                    "load: {arrival: poisson, rate_qps: 40, requests: 100, seed: 4}\n")
    one, _ = records(tmp_path, path, "--workers", "1")
    on_ray, summary = records(tmp_path, path, "--ray", "auto", "--workers", "2")
    capsys.readouterr()

    def key(rows):
        return sorted((r["seq"], r["item_id"], r["intended_ns"], r["status"], r["verdict"], r["text"]) for r in rows)

    assert len(on_ray) == 100 and key(on_ray) == key(one)
    workers = summary["outcome"]["workers"]
    assert len(workers) == 2 and sum(w["dispatched"] for w in workers) == 100
    assert all(w["failure"] is None and w["pid"] for w in workers)
    assert summary["candidates"]["a"]["latency_s"]["count"] == 100
    assert not ray.is_initialized()  # the run shut down the local cluster it started


def test_ray_is_named_when_the_cluster_cannot_be_joined(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(f"dataset: {DATASET}\ncandidates: [{{name: a, sim: instant}}]\nload: {{arrival: constant, rate_qps: 5, requests: 3}}\n")
    assert main(["run", str(path), "--ray", "127.0.0.1:1", "--no-metrics", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--ray" in err and "Traceback" not in err
