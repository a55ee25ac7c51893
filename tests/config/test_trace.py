"""Trace replay: presets and field maps, timing, synthetic prompts, and errors that name the line."""

import json

import numpy as np
import pytest

from loadbench.config.dataset import Item
from loadbench.config.errors import ConfigError
from loadbench.config.scenario import TraceConfig
from loadbench.config.tokens import count_sim_tokens
from loadbench.config.trace import SequentialOrder, load_trace, synthetic_prompt


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mooncake_preset_gives_intended_times_from_ms_timestamps_scaled(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [
        {"timestamp": 1000, "input_length": 30, "output_length": 5},
        {"timestamp": 1500, "input_length": 10, "output_length": 7},
        {"timestamp": 4000, "input_length": 99, "output_length": 1},
    ])
    tr = load_trace(TraceConfig(path="t.jsonl", preset="mooncake", time_scale=2.0), p, "t.jsonl", None)
    assert tr.offsets_ns.tolist() == [0, 250_000_000, 1_500_000_000]
    assert tr.span_s == 1.5 and tr.rows == 3 and not tr.resorted
    assert [count_sim_tokens(it.prompt_text()) for it in tr.items] == [30, 10, 99]
    assert [(it.request.max_tokens, it.request.min_tokens, it.request.ignore_eos) for it in tr.items] == [
        (5, 5, True), (7, 7, True), (1, 1, True)]


def test_azure_csv_with_iso_timestamps_and_seven_fraction_digits(tmp_path):
    p = tmp_path / "azure.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:15:46.6805900,374,44\n"
                 "2023-11-16 18:15:50.9951690,396,109\n")
    tr = load_trace(TraceConfig(path="azure.csv", preset="azure"), p, "azure.csv", None)
    assert tr.offsets_ns[1] == pytest.approx(4.314579e9, abs=2000)
    assert tr.items[1].request.max_tokens == 109


def test_burstgpt_csv_and_unsorted_rows_are_sorted_and_flagged(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("Timestamp,Model,Request tokens,Response tokens\n5,ChatGPT,10,3\n2,GPT-4,20,4\n")
    tr = load_trace(TraceConfig(path="b.csv", preset="burstgpt", fixed_output=False), p, "b.csv", None)
    assert tr.resorted and tr.offsets_ns.tolist() == [0, 3_000_000_000]
    assert [tr.items[i].request.max_tokens for i in tr.item_of_row] == [4, 3]
    assert tr.items[0].request.min_tokens is None


def test_item_field_replays_dataset_items_in_trace_order(tmp_path):
    items = [Item(id="a", input="q1"), Item(id="b", input="q2")]
    p = write_jsonl(tmp_path / "t.jsonl", [{"t": 0.0, "item": "b"}, {"t": 0.1, "item": "a"}, {"t": 0.2, "item": "b"}])
    tr = load_trace(TraceConfig(path="t.jsonl", timestamp_field="t", item_field="item"), p, "t.jsonl", items)
    order = SequentialOrder(tr.item_of_row, len(tr.items))
    assert [order.at(i) for i in range(3)] == [(1, 0), (0, 0), (1, 0)]
    assert tr.items == items


def test_full_requests_from_the_trace(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [{"ts": 1, "req": [{"role": "user", "content": "hi"}]}, {"ts": 2, "req": "plain"}])
    tr = load_trace(TraceConfig(path="t.jsonl", timestamp_field="ts", request_field="req"), p, "t.jsonl", None)
    assert tr.items[0].messages() == [{"role": "user", "content": "hi"}] and tr.items[1].prompt_text() == "plain"


def test_bad_rows_are_reported_with_line_and_field(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"timestamp": 1, "input_length": 5, "output_length": 2}\n'
                 '{"timestamp": "soon", "input_length": 5, "output_length": 2}\n'
                 '{"timestamp": 3, "input_length": -4, "output_length": 2}\n'
                 'not json\n'
                 '{"timestamp": 4, "output_length": 2}\n')
    with pytest.raises(ConfigError) as err:
        load_trace(TraceConfig(path="t.jsonl", preset="mooncake"), p, "t.jsonl", None)
    got = {(q.line, q.field) for q in err.value.problems}
    assert got == {(2, "timestamp"), (3, "input_length"), (4, ""), (5, "input_length")}
    items = [Item(id="a", input="q")]
    p2 = write_jsonl(tmp_path / "u.jsonl", [{"timestamp": 0, "id": "zz"}])
    with pytest.raises(ConfigError) as err:
        load_trace(TraceConfig(path="u.jsonl", item_field="id"), p2, "u.jsonl", items)
    assert "no dataset item has id 'zz'" in str(err.value.problems[0])


def test_trace_config_needs_exactly_one_source_of_requests():
    with pytest.raises(ValueError, match="exactly one of"):
        TraceConfig(path="x", item_field="a", input_tokens_field="b")
    with pytest.raises(ValueError, match="exactly one of"):
        TraceConfig(path="x")


def test_synthetic_prompts_are_deterministic_and_differ_by_row():
    assert synthetic_prompt(50, 3) == synthetic_prompt(50, 3) != synthetic_prompt(50, 4)
    assert count_sim_tokens(synthetic_prompt(1234, 9)) == 1234


async def test_a_trace_is_replayed_at_its_intended_times_against_the_simulator(tmp_path):
    from loadbench.config.scenario import load_scenario
    from loadbench.engine.execute import execute
    from loadbench.plan.resolve import resolve
    from loadbench.sim.process import SIM_BACKENDS

    rows = [{"timestamp": t, "input_length": 20 + t // 10, "output_length": 3 + (t // 100) % 5} for t in range(0, 1500, 37)]
    write_jsonl(tmp_path / "t.jsonl", rows)
    (tmp_path / "s.yaml").write_text("""
candidates:
  - {name: sim, sim: instant}
load:
  arrival: trace
  trace: {path: t.jsonl, preset: mooncake, time_scale: 1.5}
""")
    scenario, sdir = load_scenario(tmp_path / "s.yaml")
    result = await execute(resolve(scenario, str(tmp_path / "s.yaml"), sdir), out_root=tmp_path / "runs",
                           quiet=True, install_signal_handlers=False, backends=SIM_BACKENDS)
    records = sorted((json.loads(x) for x in (result.run_dir / "results.jsonl").read_text().splitlines()), key=lambda r: r["seq"])
    assert [r["intended_ns"] for r in records] == [round(row["timestamp"] * 1e6 / 1.5) for row in rows]
    assert [r["output_tokens"] for r in records] == [row["output_length"] for row in rows]
    assert [r["input_tokens"] for r in records] == [row["input_length"] for row in rows]
    lags = np.array([r["sent_ns"] - r["intended_ns"] for r in records])
    assert np.all(lags >= 0) and np.median(lags) < 50e6
    assert result.summary["trace"]["rows"] == len(rows)
