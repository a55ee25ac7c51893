"""The scorer registry: specs, aliases, defaults, custom scorers, verdicts, errors with lines."""

from pathlib import Path

import pytest

from loadbench.config.errors import ConfigError
from loadbench.engine.scoring_thread import score_record
from loadbench.pacing.records import ERROR, OK, RequestResult
from loadbench.scoring.registry import compile_item_specs, compile_spec, default_specs
from loadbench.scoring.scores import Score, item_verdict
from tests.helpers import item, run, view


@pytest.mark.parametrize(
    "raw, kind, fields",
    [
        ("match", "match", {}),
        ({"type": "equals", "value": "x"}, "match", {"mode": "exact", "target": "x"}),
        ({"type": "icontains", "value": "x"}, "match", {"mode": "contains", "normalize": ["casefold"]}),
        ({"type": "not-contains", "value": "x"}, "match", {"negate": True}),
        ({"type": "contains-all", "value": ["a", "b"]}, "match", {"all_of": True}),
        ({"type": "starts-with", "value": "x"}, "match", {"mode": "prefix"}),
        ({"type": "regex", "value": "a+"}, "match", {"mode": "regex", "target": "a+"}),
        ({"type": "is-json"}, "json", {"parse": "strict"}),
        ({"type": "contains-json"}, "json", {"parse": "extract"}),
        ({"type": "llm-rubric", "value": "is polite"}, "judge", {"template": "rubric", "criterion": "is polite"}),
        ({"type": "factuality"}, "judge", {"template": "fact"}),
        ({"type": "is-refusal"}, "refusal", {"expect_refusal": True}),
        ({"type": "not-is-refusal"}, "refusal", {"expect_refusal": False}),
        ({"type": "latency", "threshold": 100, "value": 2500}, "latency", {"max_s": 2.5}),
        ({"type": "python", "value": "tests.scorers_custom_example:half"}, "custom", {}),
    ],
)
def test_aliases(raw, kind, fields):
    c = compile_spec(raw)
    assert c.spec.type == kind
    for key, value in fields.items():
        assert getattr(c.spec, key) == value


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"type": "mtach"}, "did you mean 'match'"),
        ({"type": "zzzz"}, "unknown scorer 'zzzz'"),
        ({"type": "match", "mode": "sorta"}, "mode"),
        ({"type": "match", "regex": "(unclosed"}, "invalid regex"),
        ({"type": "match", "targte": "x"}, "did you mean 'target'"),
        ({"type": "match", "normalize": ["shout"]}, "unknown normalization"),
        ({"type": "custom", "function": "nomodule_xyz:f"}, "cannot import"),
        ({"type": "custom", "function": "os"}, "module:function"),
        ({"type": "cost"}, "max_usd"),
        ({}, "needs a type"),
    ],
)
def test_bad_specs_are_clear(raw, message):
    with pytest.raises(ValueError, match=message):
        compile_spec(raw)


def test_errors_name_the_dataset_line(tmp_path: Path):
    items = [item(id="a", target="x"), item(id="b", target="y", **{"assert": [{"type": "match"}, {"type": "mtach"}]})]
    for i, it in enumerate(items):
        it._line = i + 1
    _, problems = compile_item_specs(items, [], "d.jsonl", [1, 2])
    assert [(p.file, p.line, p.field) for p in problems] == [("d.jsonl", 2, "assert[1]")]


@pytest.mark.parametrize(
    "kw, kinds",
    [
        ({"target": "x"}, ["match"]),
        ({"target": "B", "choices": ["a", "b"]}, ["choice"]),
        ({"expected_tool_calls": [{"f": {}}]}, ["tool_call"]),
        ({"expect_no_tool_call": True}, ["tool_call"]),
        ({"target": '{"a": 1}', "request": {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}}, ["json"]),
        ({}, []),
    ],
)
def test_defaults_are_inferred_from_the_item(kw, kinds):
    assert [s["type"] for s in default_specs(item(**kw))] == kinds


def test_scenario_defaults_apply_to_items_without_assert():
    items = [item(target="x"), item(target="y", **{"assert": [{"type": "numeric"}]})]
    compiled, problems = compile_item_specs(items, [{"type": "match", "mode": "contains"}], "d", [1, 2])
    assert not problems
    assert [c.spec.type for c in compiled[0]] == ["match"] and compiled[0][0].spec.mode == "contains"
    assert [c.spec.type for c in compiled[1]] == ["numeric"]


def test_custom_scorers_bool_float_and_exceptions():
    assert run({"type": "custom", "function": "tests.scorers_custom_example:mentions_order"}, item(), view("your order")).status == "pass"
    assert run({"type": "custom", "function": "tests.scorers_custom_example:mentions_order", "params": {"word": "x"}},
               item(), view("your order")).status == "fail"
    s = run({"type": "custom", "function": "tests.scorers_custom_example:explode"}, item(), view("x"))
    assert (s.status, s.error_class) == ("unscored", "scorer.exception")
    assert run({"type": "custom", "function": "tests.scorers_custom_example:half"}, item(), view("x")).status == "fail"


def test_generic_negation():
    assert run({"type": "not-is-json"}, item(), view("plain words")).status == "pass"
    assert run({"type": "not-is-json"}, item(), view('{"a": 1}')).status == "fail"


@pytest.mark.parametrize(
    "statuses, gating, verdict",
    [
        (["pass", "pass"], [True, True], "pass"),
        (["pass", "fail"], [True, True], "fail"),
        (["pass", "unscored"], [True, True], "unscored"),
        (["fail", "unscored"], [True, True], "fail"),
        (["pass", "fail"], [True, False], "pass"),  # a non-gating measurement never fails the item
        (["fail"], [False], "unscored"),
    ],
)
def test_item_verdict(statuses, gating, verdict):
    scores = [Score("x", "x", s, gating=g) for s, g in zip(statuses, gating)]
    assert item_verdict(scores) == verdict


async def test_failed_requests_are_skipped_not_failed():
    specs, _ = compile_item_specs([item(target="x")], [], "d", [1])
    r = RequestResult(seq=0, candidate="a", item_id="i", item_index=0, epoch=0, intended_ns=0, in_window=True,
                      status=ERROR, error_class="timeout")
    await score_record(r, item(target="x"), specs[0], None)
    assert r.verdict == "skipped" and r.scores[0]["error_class"] == "request.timeout"
    ok = RequestResult(seq=1, candidate="a", item_id="i", item_index=0, epoch=0, intended_ns=0, in_window=True, status=OK, text="x")
    await score_record(ok, item(target="x"), specs[0], None)
    assert ok.verdict == "pass"
    judge_specs, _ = compile_item_specs([item(target="x", **{"assert": [{"type": "judge"}]})], [], "d", [1])
    await score_record(ok, item(target="x"), judge_specs[0], None)
    assert ok.verdict == "unscored" and ok.scores[0]["error_class"] == "judge.not_configured"


def test_resolve_reports_assert_problems_with_dataset_line(tmp_path: Path):
    from loadbench.config.scenario import load_scenario
    from loadbench.plan.resolve import resolve

    (tmp_path / "d.jsonl").write_text('{"input": "a", "target": "x"}\n{"input": "b", "assert": [{"type": "json", "schema": {"type": 5}}]}\n')
    (tmp_path / "s.yaml").write_text("dataset: d.jsonl\ncandidates: [{name: a, sim: instant}]\nload: {rate_qps: 1, requests: 1}\n"
                                     "scoring: {default_assert: [{type: nope}]}\n")
    scenario, base = load_scenario(tmp_path / "s.yaml")
    with pytest.raises(ConfigError) as info:
        resolve(scenario, str(tmp_path / "s.yaml"), base)
    found = {(p.line, p.field) for p in info.value.problems}
    assert (2, "assert[0]") in found
    assert any(p.field == "scoring.default_assert[0]" for p in info.value.problems)


def test_every_built_in_is_a_catalog_entry_with_the_one_signature():
    """Built-ins, the judge and user scorers share fn(item, response, **params): each built-in's
    function accepts exactly what its params model hands it, so none is special-cased."""
    import inspect

    from loadbench.scoring.catalog import CATALOG
    from loadbench.scoring.registry import SCORERS

    builtins = [name for name, entry in CATALOG.items() if entry.builtin]
    assert set(builtins) | {"custom"} == set(SCORERS)
    for name in builtins:
        entry = CATALOG[name]
        params = list(inspect.signature(entry.fn).parameters)
        assert params[:2] == ["item", "response"], name
        own = {(f.alias or k) for k, f in entry.params.model_fields.items()} - {
            "type", "name", "gating", "strip", "unfence", "regex", "group", "occurrence", "regex_ignore_case", "json_path"}
        expected = own | {"name", "extract"} | ({"judge_client"} if entry.needs_judge else set())
        assert set(params[2:]) == expected, name
    assert [n for n in builtins if CATALOG[n].needs_judge] == ["judge"]


async def test_a_registered_scorer_can_ask_for_the_judge_client():
    from loadbench.scoring.registry import compile_spec, score_async, scorer

    @scorer("asks_judge")
    async def asks_judge(item, response, *, judge_client, **params):
        return judge_client == "the-client" and params == {"level": 2}

    (score,) = await score_async([compile_spec({"type": "asks_judge", "level": 2})], item(target="x"), view("x"), "the-client")
    assert score.status == "pass"
    with pytest.raises(ValueError, match="built-in"):
        scorer("match")
    with pytest.raises(ValueError, match="built-in"):
        scorer("contains")


@pytest.mark.parametrize("raw, field, value", [
    ({"type": "cost", "threshold": 0.01}, "max_usd", 0.01),  # promptfoo's spelling
    ({"type": "latency", "threshold": 5000}, "max_s", 5.0),  # milliseconds in promptfoo
    ({"type": "latency", "value": 250}, "max_s", 0.25),
    ({"type": "cost", "max_usd": 0.02}, "max_usd", 0.02),  # loadbench's own spelling still works
])
def test_promptfoo_thresholds_are_accepted(raw, field, value):
    assert getattr(compile_spec(raw).spec, field) == pytest.approx(value)


@pytest.mark.parametrize("kind, hint", [
    ("javascript", "Python"), ("webhook", "hosts"), ("similar", "embedding"), ("levenshtein", "fuzzy"),
    ("not-similar", "embedding"), ("g-eval", "judge"),
])
def test_unsupported_promptfoo_assertions_are_refused_with_what_to_use(kind, hint):
    with pytest.raises(ValueError, match="is not supported") as err:
        compile_spec({"type": kind, "value": "x"})
    assert hint in str(err.value)


def test_the_promptfoo_table_in_the_docs_lists_every_accepted_and_refused_name():
    from loadbench.scoring.registry import ALIASES, PROMPTFOO_REFUSED

    text = (Path(__file__).resolve().parents[2] / "docs" / "scoring.md").read_text()
    for name in [*ALIASES, *PROMPTFOO_REFUSED]:
        assert f"`{name}`" in text, name
