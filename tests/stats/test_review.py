"""Human review: deterministic stratified export, blinded files, agreement on import."""

import csv
import json
import shutil
import subprocess
import sys

import pytest

from loadbench.config.errors import ConfigError
from loadbench.stats.review import export_sample, import_labels
from tests.conftest import ROOT


def test_export_is_deterministic_stratified_and_blinded(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    first = export_sample(run_dir, 24)
    text = (run_dir / "review.csv").read_text()
    again = export_sample(run_dir, 24)
    assert (run_dir / "review.csv").read_text() == text and first.strata == again.strata
    assert first.count == 24
    candidates = {k.split("|")[0] for k in first.strata}
    verdicts = {k.split("|")[1] for k in first.strata}
    assert candidates == {"small-fast", "large-accurate"} and {"pass", "fail"} <= verdicts
    rows = list(csv.DictReader(open(run_dir / "review.csv")))
    assert set(rows[0]) == {"review_id", "tags", "input", "target", "response", "human_label", "notes"}
    assert "small-fast" not in text and "large-accurate" not in text  # blinded
    other = export_sample(run_dir, 24, salt="another")
    assert (run_dir / "review.csv").read_text() != text or other.strata != first.strata


def test_import_reports_agreement_kappa_and_corrected_accuracy(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    export_sample(run_dir, 30)
    key = json.loads((run_dir / "review_key.json").read_text())["rows"]
    rows = list(csv.DictReader(open(run_dir / "review.csv")))
    for i, row in enumerate(rows):  # the human agrees with the machine except on every 4th row
        machine = key[row["review_id"]]["verdict"]
        human = machine if machine in ("pass", "fail") else "pass"
        row["human_label"] = human if i % 4 else {"pass": "fail", "fail": "pass"}[human]
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    report = import_labels(run_dir, labels)
    decided = sum(report["confusion"].values())
    disagree = report["confusion"]["machine_pass_human_fail"] + report["confusion"]["machine_fail_human_pass"]
    assert report["agreement"] == pytest.approx(1 - disagree / decided)
    assert -1 <= report["cohen_kappa"] <= 1
    for c in report["candidates"].values():
        if c["human_corrected_accuracy"] is not None:
            assert 0 <= c["human_corrected_accuracy"] <= 1
    assert (run_dir / "review_report.json").exists()


def test_import_rejects_bad_labels_with_lines(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    export_sample(run_dir, 5)
    bad = tmp_path / "bad.csv"
    bad.write_text("review_id,human_label\nr0001,maybe\nr9999,pass\n")
    with pytest.raises(ConfigError) as info:
        import_labels(run_dir, bad)
    assert [(p.line, "maybe" in p.message or "unknown" in p.message) for p in info.value.problems] == [(2, True), (3, True)]
    proc = subprocess.run([sys.executable, "-m", "loadbench", "review", "import", str(run_dir), str(bad)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
