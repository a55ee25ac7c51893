"""The public Python API: a curated surface, a run from code with a custom async scorer
registered by decorator, settings restored afterwards."""

import asyncio
import json
import sys

import pytest

import loadbench


def test_the_public_surface_is_curated():
    assert set(loadbench.__all__) == {"ConfigError", "RunResult", "Scenario", "Score", "ScorerParams", "__version__", "run",
                                      "run_async", "scorer", "sweep", "variant"}
    for name in loadbench.__all__:
        assert getattr(loadbench, name) is not None
    from importlib import metadata

    assert loadbench.__version__ == metadata.version("loadbench")
    with pytest.raises(AttributeError):
        loadbench.engine_internals  # noqa: B018


def write_scenario(tmp_path, scorer_type):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"question {i}", "target": "ok",
                                        "assert": [{"type": scorer_type, "needle": "e"}]}) + "\n" for i in range(10)))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"""
name: api
dataset: {data}
candidates: [{{name: a, sim: instant, sim_params: {{filler_tokens: 4}}}}]
load: {{arrival: constant, rate_qps: 40, requests: 40, seed: 1}}
slo: ["error_ratio <= 0.5"]
""")
    return scenario


def test_run_with_an_async_scorer_registered_by_decorator(tmp_path):
    seen = []

    @loadbench.scorer("has_letter")
    async def has_letter(item, response, *, needle, **_):
        await asyncio.sleep(0)  # a real async scorer (e.g. calling a service)
        seen.append(item.id)
        return needle in response.text.lower()

    switch, policy = sys.getswitchinterval(), asyncio.get_event_loop_policy()
    result = loadbench.run(write_scenario(tmp_path, "has_letter"), out=tmp_path / "runs")
    assert isinstance(result, loadbench.RunResult) and result.run_dir.is_dir()
    assert result.exit_code in (0, 5)  # the error ratio clause: decided or not, never failed
    stats = result.summary["candidates"]["a"]["scorers"]["has_letter"]
    assert stats["pass"] + stats["fail"] + stats["unscored"] == 40 and len(seen) == 40
    assert result.summary["candidates"]["a"]["accuracy"]["n"] == stats["pass"] + stats["fail"]
    # what the CLI sets for a run is restored for the caller
    assert sys.getswitchinterval() == switch and asyncio.get_event_loop_policy() is policy
    # one documented mode for every artifact (the umask's, 0644 under the usual 022): summary.json
    # and the reports are not private while results.jsonl is readable
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in result.run_dir.iterdir() if p.is_file()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_a_scorer_with_a_params_model_is_validated_when_the_scenario_loads(tmp_path):
    class NeedleParams(loadbench.ScorerParams):
        needle: str
        min_count: int = 1

    @loadbench.scorer("needle_count", params=NeedleParams)
    def needle_count(item, response, *, needle, min_count, name, extract):
        return response.text.lower().count(needle) >= min_count

    result = loadbench.run(write_scenario(tmp_path, "needle_count"), out=tmp_path / "runs")
    stats = result.summary["candidates"]["a"]["scorers"]["needle_count"]
    assert stats["pass"] + stats["fail"] == 40
    bad = tmp_path / "bad"
    bad.mkdir()
    scenario = write_scenario(bad, "needle_count")
    data = bad / "d.jsonl"
    data.write_text(data.read_text().replace('"needle"', '"neadle"'))
    with pytest.raises(loadbench.ConfigError) as err:
        loadbench.run(scenario, out=bad / "runs")
    message = str(err.value)
    assert "d.jsonl" in message and "needle" in message  # the file, and the field the model missed


def test_run_takes_a_scenario_object_and_overrides(tmp_path):
    @loadbench.scorer("always")
    def always(item, response, **_):
        return loadbench.Score("always", "always", "pass", 1.0)

    from loadbench.config.scenario import load_scenario

    scenario, _ = load_scenario(write_scenario(tmp_path, "always"))
    result = loadbench.run(scenario, out=tmp_path / "runs", overrides=["load.requests=10"])
    assert result.summary["candidates"]["a"]["requests"]["sent"] == 10
    assert result.summary["candidates"]["a"]["scorers"]["always"]["pass"] == 10


def test_bad_input_raises_config_error(tmp_path):
    with pytest.raises(loadbench.ConfigError) as err:
        loadbench.run(tmp_path / "missing.yaml")
    assert "scenario file not found" in str(err.value)
    with pytest.raises(ValueError, match="built-in"):
        loadbench.scorer("match")


def test_run_async_inside_a_running_loop(tmp_path):
    @loadbench.scorer("sync_len")
    def sync_len(item, response, **_):
        return 1.0 if response.text else 0.0

    async def main():
        return await loadbench.run_async(write_scenario(tmp_path, "sync_len"), out=tmp_path / "runs")

    result = asyncio.run(main())
    assert result.summary["candidates"]["a"]["scorers"]["sync_len"]["pass"] == 40
