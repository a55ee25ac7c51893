"""Calibration: the stored per-worker ceiling, choosing --workers, the overload warning, and the command."""

import json

import pytest

from loadbench.cli.main import main
from loadbench.scale.calibration import capacity_warning, choose_workers, load_calibration


@pytest.mark.parametrize("requested, offered, capacity, cores, expected", [
    ("auto", 100.0, 1500.0, 8, 1), ("auto", 2000.0, 1500.0, 8, 3), ("auto", 10**6, 1500.0, 4, 4),
    ("auto", None, 1500.0, 8, 1), ("3", 10.0, 1500.0, 2, 3),
])
def test_choose_workers(requested, offered, capacity, cores, expected):
    assert choose_workers(requested, offered_rps=offered, capacity_rps=capacity, cores=cores) == expected


def test_capacity_warning():
    assert capacity_warning(1000.0, 1, 1500.0, True) is None
    text = capacity_warning(5000.0, 2, 1500.0, False)
    assert "--workers 7" in text and "loadbench calibrate" in text



def test_calibrate_measures_saves_and_run_warns_before_an_overload(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOADBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["calibrate", "--seconds", "1", "--concurrency", "16", "--chunks", "20"]) == 0
    out = capsys.readouterr().out
    cal = load_calibration()
    assert cal is not None and cal["worker_rps"] > 100 and cal["worker_stream_rps"] > 10
    assert cal["worker_stream_events_per_s"] == pytest.approx(cal["worker_stream_rps"] * 20)
    assert "one worker:" in out and "--workers" in out
    saved = json.loads((tmp_path / "cache" / "calibration.json").read_text())
    assert saved["measured_at"]
    # a measurement of an older client (no format, or another one) is not trusted
    stale = tmp_path / "cache" / "calibration.json"
    stale.write_text(json.dumps({k: v for k, v in saved.items() if k != "format"}))
    assert load_calibration() is None
    stale.write_text(json.dumps(saved))
    # a plan far above the calibrated ceiling is flagged before any traffic
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""
candidates: [{name: b, sim: instant}]
load:
  arrival: trace
  trace: {path: t.jsonl, preset: mooncake}
""")
    rate = cal["worker_stream_rps"] * 50
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"timestamp": i * 1000 / rate, "input_length": 2, "output_length": 1}) + "\n"
                                              for i in range(40)))
    main(["run", str(scenario), "--workers", "1", "--no-metrics", "--quiet", "--out", str(tmp_path / "runs"), "--fail-on", "none"])
    err = capsys.readouterr().err
    assert "warning: the scenario offers" in err and "calibrated ceiling" in err


def test_a_measurement_without_a_rate_is_explained_not_a_crash(tmp_path, monkeypatch, capsys):
    """Seen once in the suite: no request finished inside the window, throughput was missing and
    formatting it raised TypeError.  Now: a message, exit 3, nothing saved."""
    import loadbench.cli.calibrate as calibrate

    async def no_rate(seconds, concurrency, chunks, log):
        raise calibrate.CalibrationFailed("no request finished in the 1 s measurement window (0 sent): try a longer --seconds")

    monkeypatch.setenv("LOADBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(calibrate, "measure", no_rate)
    assert main(["calibrate", "--seconds", "1"]) == 3
    err = capsys.readouterr().err
    assert "try a longer --seconds" in err and "nothing was saved" in err and "Traceback" not in err
    assert not (tmp_path / "cache" / "calibration.json").exists()
