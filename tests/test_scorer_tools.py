"""Tool-call scoring in BFCL's semantics."""

import pytest

from loadbench.scorer_tools import normalize_expected
from tests.helpers import item, run, view

WEATHER = [{"name": "get_weather", "arguments": {"city": ["Oslo", "oslo"], "unit": ["celsius", ""]}}]
PARALLEL = [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}, {"name": "get_weather", "arguments": {"city": ["Lima"]}}]


@pytest.mark.parametrize(
    "expected, calls, text, status, error_class",
    [
        (WEATHER, [("get_weather", {"city": "Oslo"})], "", "pass", None),  # optional param omitted
        (WEATHER, [("get_weather", {"city": "OSLO", "unit": "celsius"})], "", "pass", None),  # bfcl string norm
        (WEATHER, [("get_weather", {"city": "Bergen"})], "", "fail", "tool.value_error"),
        (WEATHER, [("get_wether", {"city": "Oslo"})], "", "fail", "tool.wrong_name"),
        (WEATHER, [("get_weather", {"unit": "celsius"})], "", "fail", "tool.missing_required"),
        (WEATHER, [("get_weather", {"city": "Oslo", "lang": "no"})], "", "fail", "tool.unexpected_param"),
        (WEATHER, [("get_weather", {"city": 5})], "", "fail", "tool.type_error"),
        (WEATHER, [("get_weather", '{"city": "Oslo"')], "", "fail", "tool.args_not_json"),
        (WEATHER, [], '{"name": "get_weather", "arguments": {"city": "Oslo"}}', "fail", "tool.call_as_text"),
        (WEATHER, [], "It is sunny in Oslo.", "fail", "tool.wrong_count"),
        (WEATHER, [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Oslo"})], "", "fail", "tool.wrong_count"),
        (PARALLEL, [("get_weather", {"city": "Lima"}), ("get_weather", {"city": "Oslo"})], "", "pass", None),  # out of order
        (PARALLEL, [("get_weather", {"city": "Lima"}), ("get_weather", {"city": "Quito"})], "", "fail", "tool.value_error"),
        ([{"convert": {"amount": [10.0], "to": ["EUR"]}}], [("convert", {"amount": 10, "to": "EUR"})], "", "pass", None),  # int for float, BFCL form
        ([{"convert": {"amount": [10], "to": ["EUR"]}}], [("convert", {"amount": 10.5, "to": "EUR"})], "", "fail", "tool.type_error"),
        ([{"f": {"flag": [True]}}], [("f", {"flag": 1})], "", "fail", "tool.type_error"),
        ([{"f": {"ids": [[1, 2]]}}], [("f", {"ids": [1, 2]})], "", "pass", None),
    ],
)
def test_tool_calls(expected, calls, text, status, error_class):
    s = run({"type": "tool_call"}, item(expected_tool_calls=expected), view(text, tool_calls=calls))
    assert (s.status, s.error_class) == (status, error_class), s


def test_exact_order_rejects_swapped_parallel_calls():
    calls = [("get_weather", {"city": "Lima"}), ("get_weather", {"city": "Oslo"})]
    s = run({"type": "tool_call", "order": "exact"}, item(expected_tool_calls=PARALLEL), view("", tool_calls=calls))
    assert s.status == "fail" and s.error_class == "tool.value_error"


def test_greedy_matching_would_fail_where_bipartite_succeeds():
    expected = [{"name": "f", "arguments": {"x": [1, 2]}}, {"name": "f", "arguments": {"x": [1]}}]
    calls = [("f", {"x": 2}), ("f", {"x": 1})]
    assert run({"type": "tool_call"}, item(expected_tool_calls=expected), view("", tool_calls=calls)).status == "pass"
    calls = [("f", {"x": 1}), ("f", {"x": 2})]  # greedy would pair expected[0] with x=1 and then fail
    assert run({"type": "tool_call"}, item(expected_tool_calls=expected), view("", tool_calls=calls)).status == "pass"


def test_irrelevance():
    it = item(expect_no_tool_call=True)
    assert run({"type": "tool_call"}, it, view("Happy to help!")).status == "pass"
    s = run({"type": "tool_call"}, it, view("", tool_calls=[("get_weather", {"city": "Oslo"})]))
    assert (s.status, s.error_class) == ("fail", "tool.unexpected_call")


def test_missing_expectations_are_unscored_and_forms_normalize():
    assert run({"type": "tool_call"}, item(), view("x")).status == "unscored"
    assert normalize_expected([{"f": {"a": 1}}]) == [("f", {"a": [1]})]
    with pytest.raises(ValueError):
        normalize_expected([{"f": {}, "g": {}}])
