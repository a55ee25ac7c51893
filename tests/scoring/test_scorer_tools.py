"""Tool-call scoring in BFCL's semantics."""

import pytest

from loadbench.scoring.tools import normalize_expected
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


# ------------------------------------------------------------------------ trajectories

def traj(calls, *, stopped=True, retries=0):
    return {"calls": [{"step": i, "name": n, "arguments": a, "result": "canned", "error": False, "retry": False}
                      for i, (n, a) in enumerate(calls)], "steps": len(calls) + 1, "stopped": stopped, "retries": retries}


AGENT = dict(input="refund order 7", tool_results=[], expected_tool_calls=[
    {"name": "find", "arguments": {"id": [7]}}, {"name": "refund", "arguments": {"id": [7], "reason": ["damaged"]}}])


def run_traj(spec, trajectory):
    v = view("done")
    v.trajectory = trajectory
    return run(spec, item(**AGENT), v)


@pytest.mark.parametrize("calls,spec,status,cls", [
    ([("find", {"id": 7}), ("refund", {"id": 7, "reason": "damaged"})], "trajectory", "pass", None),
    ([("find", {"id": 7}), ("lookup", {}), ("refund", {"id": 7, "reason": "Damaged"})], "trajectory", "pass", None),
    ([("refund", {"id": 7, "reason": "damaged"}), ("find", {"id": 7})], "trajectory", "fail", "trajectory.order"),
    ([("refund", {"id": 7, "reason": "damaged"}), ("find", {"id": 7})], {"type": "trajectory", "order": "any"}, "pass", None),
    ([("find", {"id": 7}), ("refund", {"id": 8, "reason": "damaged"})], "trajectory", "fail", "tool.value_error"),
    ([("find", {"id": 7})], "trajectory", "fail", "trajectory.missing_call"),
    ([("find", {"id": 7}), ("find", {"id": 7}), ("refund", {"id": 7, "reason": "damaged"})],
     {"type": "trajectory", "allow_extra_calls": False}, "fail", "trajectory.extra_calls"),
])
def test_trajectory_table(calls, spec, status, cls):
    score = run_traj(spec, traj(calls))
    assert (score.status, score.error_class) == (status, cls), score


def test_trajectory_that_never_stopped_fails_and_retries_can_be_capped():
    ok_calls = [("find", {"id": 7}), ("refund", {"id": 7, "reason": "damaged"})]
    assert run_traj("trajectory", traj(ok_calls, stopped=False)).error_class == "trajectory.max_steps"
    capped = run_traj({"type": "trajectory", "max_retries": 1}, traj(ok_calls, retries=2))
    assert capped.error_class == "trajectory.too_many_retries"
    assert run_traj("trajectory", traj(ok_calls, retries=2)).status == "pass"
    assert run("trajectory", item(input="x"), view("x")).status == "unscored"
