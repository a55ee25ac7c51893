"""Needle-in-a-haystack items: requested length, needle depth, determinism, and the CLI."""

import json

import pytest

from loadbench.cli.main import main
from loadbench.config.dataset import Item
from loadbench.config.needle import needle_items, parse_length
from loadbench.config.tokens import count_sim_tokens


@pytest.mark.parametrize("n", [1000, 4000, 16000])
def test_items_have_the_requested_context_length(n):
    (it,) = needle_items([n], [0.5], 1, seed=2)
    tokens = count_sim_tokens(" ".join(m["content"] for m in it["input"]))
    assert n * 0.97 <= tokens <= n * 1.03
    Item.model_validate(it)


def test_the_needle_sits_at_the_asked_depth_and_the_target_is_in_it():
    items = needle_items([4000], [0.0, 0.5, 1.0], 1, seed=5)
    positions = []
    for it in items:
        doc = it["input"][1]["content"].split("\n\nQuestion:")[0]
        at = doc.index(it["target"])
        positions.append(at / len(doc))
        assert "ctx:4k" in it["metadata"]["tags"]
    assert positions[0] < 0.05 and 0.4 < positions[1] < 0.6 and positions[2] > 0.95
    assert needle_items([4000], [0.5], 2, seed=5) == needle_items([4000], [0.5], 2, seed=5)


def test_parse_length():
    assert parse_length("4k") == 4000 and parse_length("1500") == 1500
    with pytest.raises(ValueError):
        parse_length("10")


def test_cli_writes_a_valid_eval_set_and_rejects_bad_lengths(tmp_path, capsys):
    out = tmp_path / "n.jsonl"
    assert main(["generate", "needle", "--lengths", "1k,2k", "--depths", "0,1", "--per-cell", "2", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
    assert main(["generate", "needle", "--lengths", "2x", "--depths", "1.5", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--lengths" in err and "--depths" in err and "Traceback" not in err
