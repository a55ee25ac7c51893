"""Re-scoring stored responses, without traffic."""

import json
import re
import shutil
import subprocess
import sys

from tests.cli.test_cli import rounded
from tests.conftest import ROOT


def loadbench(*args):
    return subprocess.run([sys.executable, "-m", "loadbench", *args], cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_rescore_reproduces_the_run_scores(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    before = json.loads((run_dir / "summary.json").read_text())
    assert before["candidates"]["small-fast"]["accuracy"]["n"] > 20
    proc = loadbench("rescore", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    for name in before["candidates"]:
        for key in ("accuracy", "scorers", "by_tag", "latency_s", "requests"):
            assert rounded(after["candidates"][name][key]) == rounded(before["candidates"][name][key]), (name, key)
    assert rounded(after["comparisons"]) == rounded(before["comparisons"])
    assert (run_dir / "results.before-rescore.jsonl").exists()
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == len(
        (run_dir / "results.before-rescore.jsonl").read_text().splitlines())


def test_rescore_with_other_scorers_changes_verdicts_without_sending(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    # every item is now checked only for being non-empty JSON: most answers fail
    scenario = tmp_path / "strict.yaml"
    # (without the demo's fidelity variants: they score multiple-choice items by the option letter)
    text = re.sub(r"\nfidelity:\n(  .*\n)+", "\n", (ROOT / "scenarios" / "demo.yaml").read_text())
    scenario.write_text(text.replace("dataset: data/demo_mix.jsonl", f"dataset: {ROOT / 'scenarios' / 'data' / 'demo_mix.jsonl'}"))
    data = tmp_path / "mix.jsonl"
    rows = [json.loads(line) for line in (ROOT / "scenarios" / "data" / "demo_mix.jsonl").read_text().splitlines()]
    for row in rows:
        row["assert"] = [{"type": "is-json"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scenario.write_text(scenario.read_text().replace(str(ROOT / "scenarios" / "data" / "demo_mix.jsonl"), str(data)))
    proc = loadbench("rescore", str(run_dir), "--scenario", str(scenario), "--json")
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    scorers = after["candidates"]["small-fast"]["scorers"]
    assert set(scorers) == {"json"}
    assert scorers["json"]["fail"] > scorers["json"]["pass"]
    assert "changed" not in proc.stderr


def test_rescore_bad_input():
    proc = loadbench("rescore", "/nonexistent")
    assert proc.returncode == 2 and "not a directory" in proc.stderr
