"""Eval-set lines: validated with line numbers; ids stable; every field kept."""

from pathlib import Path

import pytest

from loadbench.config.dataset import load_dataset, stable_id
from loadbench.config.errors import ConfigError


def write(tmp_path: Path, lines, raw: bytes | None = None) -> Path:
    p = tmp_path / "d.jsonl"
    if raw is not None:
        p.write_bytes(raw)
    else:
        p.write_text("".join(line + "\n" for line in lines))
    return p


def test_minimal_and_full_records(tmp_path):
    items = load_dataset(write(tmp_path, [
        '{"input": "What is 2+2?"}',
        '{"id": 7, "input": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], '
        '"ideal": ["hello", "hi"], "choices": ["a", "b"], "metadata": {"tags": ["greet"]}, '
        '"request": {"max_tokens": 5, "tools": [{"type": "function", "function": {"name": "f"}}]}, '
        '"expected_tool_calls": [{"name": "f", "arguments": {}}], "assert": [{"type": "match"}]}',
    ]))
    a, b = items
    assert a.id == stable_id("What is 2+2?") and a.messages() == [{"role": "user", "content": "What is 2+2?"}]
    assert b.id == "7" and b.target == ["hello", "hi"] and b.tags == ["greet"]
    assert b.request.max_tokens == 5 and b.assert_ == [{"type": "match"}]
    assert b.prompt_text() == "system: be brief\nuser: hi" and b.last_user_text() == "hi"


def test_ids_are_stable_and_collisions_get_suffixes(tmp_path):
    items = load_dataset(write(tmp_path, ['{"input": "same"}', '{"input": "same"}']))
    assert items[0].id == stable_id("same") and items[1].id == stable_id("same") + "-2"
    assert load_dataset(write(tmp_path, ['{"input": "same"}']))[0].id == items[0].id


@pytest.mark.parametrize(
    "lines, line, field, message",
    [
        (['{"input": "ok"}', '{"inputs": "typo"}'], 2, "inputs", "unknown field (did you mean 'input'?)"),
        (['{"input": "ok"}', '{"inputs": "typo"}'], 2, "input", "required field is missing"),
        (['{"input": "ok", "colour": 1}'], 1, "colour", "unknown field"),
        (['{"input": 5}'], 1, "input", ""),
        (['{"input": ""}'], 1, "(record)", "input is empty"),
        (['{"input": []}'], 1, "(record)", "no messages"),
        (['{"input": [{"role": "wizard", "content": "x"}]}'], 1, "input[0].role", "'user'"),
        (['{"input": "a", "target": "x", "ideal": "y"}'], 1, "(record)", "not both"),
        (['{"input": "a", "request": {"max_tokens": 0}}'], 1, "request.max_tokens", "greater than or equal to 1"),
        (['{"input": "a", "request": {"max_tokenz": 3}}'], 1, "request.max_tokenz", "unknown field"),
        (['{"id": "x", "input": "a"}', '{"id": "x", "input": "b"}'], 2, "id", "duplicate id 'x' (first on line 1)"),
        (['["input", "a"]'], 1, "", "JSON object"),
        (['{"input": "a"', ], 1, "", "not valid JSON"),
    ],
)
def test_bad_lines_name_line_and_field(tmp_path, lines, line, field, message):
    with pytest.raises(ConfigError) as info:
        load_dataset(write(tmp_path, lines))
    p = next((p for p in info.value.problems if p.field == field), None)
    assert p is not None, [str(x) for x in info.value.problems]
    assert p.line == line
    assert message in p.message


def test_all_bad_lines_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset(write(tmp_path, ['{"x": 1}', '{"input": "ok"}', "nope", '{"input": 3}']))
    assert [(p.line, p.field) for p in info.value.problems] == [(1, "input"), (1, "x"), (3, ""), (4, "input")]


def test_truncated_last_line_and_non_utf8(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset(write(tmp_path, [], raw=b'{"input": "a"}\n{"input": "b'))
    assert info.value.problems[0].line == 2 and "truncated" in info.value.problems[0].message
    with pytest.raises(ConfigError) as info:
        load_dataset(write(tmp_path, [], raw=b'{"input": "a"}\n{"input": "\xff"}\n'))
    assert info.value.problems[0].line == 2 and "UTF-8" in info.value.problems[0].message


def test_empty_missing_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no records"):
        load_dataset(write(tmp_path, ["", "  "]))
    with pytest.raises(ConfigError, match="not found"):
        load_dataset(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="directory"):
        load_dataset(tmp_path)


def test_bundled_datasets_are_valid():
    root = Path(__file__).resolve().parents[2] / "scenarios"
    files = sorted(root.glob("data/*.jsonl"))
    assert files
    for f in files:
        assert load_dataset(f)
