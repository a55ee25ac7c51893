"""Scenario files: every error at once, with file, line and field; overrides."""

from pathlib import Path

import pytest

from loadbench.config.errors import ConfigError
from loadbench.config.scenario import apply_override, load_scenario, parse_override

GOOD = """\
name: t
dataset: data.jsonl
candidates:
  - name: a
    sim: small-fast
  - name: b
    base_url: http://127.0.0.1:9/v1
    model: m
    api_key_env: TEST_KEY
load:
  rate_qps: 5
  duration_s: 10
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def problems(tmp_path, text, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_scenario(write(tmp_path, text), list(overrides))
    return info.value.problems


def test_good_scenario_loads_with_defaults(tmp_path):
    s, base = load_scenario(write(tmp_path, GOOD))
    assert base == tmp_path
    assert [c.name for c in s.candidates] == ["a", "b"]
    assert s.load.arrival == "poisson" and s.load.on_saturation == "queue" and s.load.mode == "open"
    assert s.candidates[0].stream is True and s.candidates[0].max_in_flight == 512
    assert s.candidates[1].base_url == "http://127.0.0.1:9/v1"


def test_unknown_key_suggests_the_right_one_with_its_line(tmp_path):
    (p,) = problems(tmp_path, GOOD.replace("  rate_qps: 5", "  rate_qsp: 5\n  rate_qps: 5"))
    assert p.line == 11 and p.field == "load.rate_qsp"
    assert "did you mean 'rate_qps'" in p.message


def test_all_errors_are_reported_at_once_with_lines(tmp_path):
    text = GOOD.replace("rate_qps: 5", "rate_qps: -1").replace("    sim: small-fast", "    sim: small-fast\n    stream: maybe")
    ps = problems(tmp_path, text)
    by_field = {p.field: p for p in ps}
    assert set(by_field) == {"candidates[0].stream", "load.rate_qps"}
    assert by_field["candidates[0].stream"].line == 6
    assert by_field["load.rate_qps"].line == 12
    assert "greater than 0" in by_field["load.rate_qps"].message
    assert str(by_field["load.rate_qps"]).startswith(f"{tmp_path / 's.yaml'}:12: load.rate_qps:")


@pytest.mark.parametrize(
    "old, new, field, message",
    [
        ("  duration_s: 10\n", "", "load", "give duration_s or requests"),
        ("  rate_qps: 5", "  rate_qps: 5\n  requests: 10", "load", "not both"),
        ("  rate_qps: 5", "  rate_qps: 5\n  arrival: uniform", "load.arrival", "'constant', 'poisson', 'gamma' or 'trace'"),
        ("  rate_qps: 5", "  rate_qps: 5\n  mode: closed", "load", "concurrency"),
        ("    sim: small-fast\n", "", "candidates[0]", "base_url"),
        ("    model: m\n", "    model: m\n    headers: {Authorization: x}\n", "candidates[1].headers", "api_key_env"),
        ("http://127.0.0.1:9/v1", "127.0.0.1:9", "candidates[1].base_url", "http://"),
        ("  - name: b", "  - name: a", "candidates", "used twice"),
        ("dataset: data.jsonl\n", "", "dataset", "required key is missing"),
    ],
)
def test_validation_table(tmp_path, old, new, field, message):
    assert old in GOOD
    ps = problems(tmp_path, GOOD.replace(old, new))
    assert any(p.field == field and message in p.message for p in ps), [str(p) for p in ps]


def test_broken_yaml_names_the_line(tmp_path):
    (p,) = problems(tmp_path, "name: x\ncandidates: [a, b\nload: {}\n")
    assert p.line is not None and "YAML syntax error" in p.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text"])
def test_not_a_mapping(tmp_path, text):
    (p,) = problems(tmp_path, text)
    assert "mapping" in p.message


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_scenario(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"name: ok\nx: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(p)
    assert info.value.problems[0].line == 2


def test_overrides_by_path_index_and_name(tmp_path):
    s, _ = load_scenario(write(tmp_path, GOOD), ["load.rate_qps=12.5", "candidates.b.stream=false", "candidates.0.timeout_s=3",
                                                   "load.seed=7"])
    assert s.load.rate_qps == 12.5 and s.load.seed == 7
    assert s.candidates[1].stream is False and s.candidates[0].timeout_s == 3


def test_override_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"dotted\.path=value"):
        parse_override("no-equals")
    with pytest.raises(ConfigError, match="no list element"):
        apply_override({"candidates": [{"name": "a"}]}, ["candidates", "zzz", "stream"], False)
    ps = problems(tmp_path, GOOD, ["load.rate_qps=fast"])
    assert ps[0].field == "load.rate_qps"


def test_a_misspelt_set_flag_is_blamed_not_the_file(tmp_path):
    from loadbench.config.errors import ConfigError
    from loadbench.config.scenario import load_scenario

    path = tmp_path / "s.yaml"
    path.write_text("dataset: d.jsonl\ncandidates: [{name: a, sim: instant}]\nload: {rate_qps: 1, duration_s: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path, ["load.duraton_s=5"])
    (problem,) = err.value.problems
    assert problem.file == "--set load.duraton_s=5" and problem.field == "load.duraton_s"
    assert "unknown key" in problem.message and "duration_s" in problem.message
    with pytest.raises(ConfigError) as err:  # a bad value written by --set is the flag's too
        load_scenario(path, ["load.rate_qps=-1"])
    assert err.value.problems[0].file.startswith("--set")
