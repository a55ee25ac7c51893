"""Tool-call correctness in BFCL's semantics, with order-free matching of parallel calls."""

from __future__ import annotations

import re
from typing import Any, Literal

from ..config.dataset import Item
from .basic import SpecBase
from .catalog import scorer
from .scores import ResponseView, Score, ToolCall, failed, passed, unscored


class ToolCallSpec(SpecBase):
    type: Literal["tool_call"] = "tool_call"
    order: Literal["any", "exact"] = "any"
    string_norm: Literal["bfcl", "casefold", "none"] = "bfcl"
    int_as_float: bool = True


Expected = tuple[str, dict[str, list[Any]]]

_BFCL_DROP = re.compile(r"[ ,./\-_*^]")


def normalize_expected(raw: list[dict[str, Any]]) -> list[Expected]:
    """Accept BFCL's possible-answer form `{fn: {param: [values]}}` and the explicit form
    `{"name": fn, "arguments": {param: [values]}}`; a bare value means [value]."""
    out: list[Expected] = []
    for call in raw:
        if "name" in call and set(call) <= {"name", "arguments"}:
            name, args = str(call["name"]), call.get("arguments") or {}
        elif len(call) == 1:
            (name, args), = call.items()
            args = args or {}
        else:
            raise ValueError(f"cannot read expected tool call {call!r}")
        out.append((name, {k: (v if isinstance(v, list) else [v]) for k, v in args.items()}))
    return out


def _norm_str(s: str, how: str) -> str:
    if how == "bfcl":
        return _BFCL_DROP.sub("", s).lower().replace("'", '"')
    if how == "casefold":
        return s.casefold().strip()
    return s


def _type_ok(value: Any, accepted: list[Any], int_as_float: bool) -> bool:
    for a in accepted:
        if a == "":
            continue
        if isinstance(a, bool) or isinstance(value, bool):
            if isinstance(a, bool) and isinstance(value, bool):
                return True
            continue
        if isinstance(a, float) and isinstance(value, (int, float)) and (int_as_float or isinstance(value, float)):
            return True
        if type(a) is type(value) or (isinstance(a, int) and isinstance(value, int)):
            return True
    return False


def _value_ok(value: Any, accepted: list[Any], string_norm: str) -> bool:
    for a in accepted:
        if a == "" and value == "":
            return True
        if a == "":
            continue
        if isinstance(a, str) and isinstance(value, str):
            if _norm_str(a, string_norm) == _norm_str(value, string_norm):
                return True
        elif isinstance(a, bool) or isinstance(value, bool):
            if a is value:
                return True
        elif isinstance(a, (int, float)) and isinstance(value, (int, float)):
            if float(a) == float(value):
                return True
        elif isinstance(a, list) and isinstance(value, list):
            if len(a) == len(value) and all(_value_ok(v, [x], string_norm) for x, v in zip(a, value)):
                return True
        elif a == value:
            return True
    return False


def check_call(expected: Expected, call: ToolCall, string_norm: str, int_as_float: bool) -> str | None:
    """The first error class of one actual call against one expected call, or None."""
    name, params = expected
    if call.name != name:
        return "tool.wrong_name"
    if not isinstance(call.arguments, dict):
        return "tool.args_not_json"
    args = call.arguments
    for param, accepted in params.items():
        if param not in args and "" not in accepted:
            return "tool.missing_required"
    for param in args:
        if param not in params:
            return "tool.unexpected_param"
    for param, value in args.items():
        if not _type_ok(value, params[param], int_as_float) and not (value == "" and "" in params[param]):
            return "tool.type_error"
    for param, value in args.items():
        if not _value_ok(value, params[param], string_norm):
            return "tool.value_error"
    return None


def _max_matching(n_exp: int, n_act: int, ok: list[list[bool]]) -> list[int]:
    """Maximum bipartite matching (augmenting paths): match[e] = actual index or -1."""
    match_act = [-1] * n_act

    def augment(e: int, seen: list[bool]) -> bool:
        for a in range(n_act):
            if ok[e][a] and not seen[a]:
                seen[a] = True
                if match_act[a] < 0 or augment(match_act[a], seen):
                    match_act[a] = e
                    return True
        return False

    for e in range(n_exp):
        augment(e, [False] * n_act)
    match_exp = [-1] * n_exp
    for a, e in enumerate(match_act):
        if e >= 0:
            match_exp[e] = a
    return match_exp


# From most to least specific: what an unmatched expected call is blamed on.
_SPECIFIC = ("tool.value_error", "tool.type_error", "tool.unexpected_param", "tool.missing_required",
             "tool.args_not_json", "tool.wrong_name")

_CALL_IN_TEXT = re.compile(r'<tool_call>|"name"\s*:\s*"[^"]+"\s*,\s*"(arguments|parameters)"\s*:', re.IGNORECASE)


@scorer("tool_call", params=ToolCallSpec, builtin=True)
def score_tool_call(item: Item, response: ResponseView, *, name: str, extract: dict[str, Any], order: str,
                    string_norm: str, int_as_float: bool) -> Score:
    view = response
    calls = view.tool_calls
    if item.expect_no_tool_call:
        if calls:
            return failed("tool_call", name, "tool.unexpected_call", ", ".join(c.name for c in calls))
        return passed("tool_call", name, answer="(no call)", metadata={"relevance": "irrelevance"})
    if not item.expected_tool_calls:
        return unscored("tool_call", name, "evalset.no_expected_calls", "item has no expected_tool_calls")
    try:
        expected = normalize_expected(item.expected_tool_calls)
    except ValueError as exc:
        return unscored("tool_call", name, "evalset.bad_expected_calls", str(exc))
    answer = "; ".join(f"{c.name}({c.arguments_raw})" for c in calls)[:300]
    if not calls:
        if _CALL_IN_TEXT.search(view.text):
            return failed("tool_call", name, "tool.call_as_text", view.text[:200])
        return failed("tool_call", name, "tool.wrong_count", "(no call)", explanation=f"expected {len(expected)} call(s), got none")
    bad_json = [c for c in calls if c.arguments is None or not isinstance(c.arguments, dict)]
    if bad_json:
        return failed("tool_call", name, "tool.args_not_json", answer, explanation=bad_json[0].parse_error)
    expected_names = {e[0] for e in expected}
    name_tp = sum(1 for c in calls if c.name in expected_names)
    meta = {"name_f1": 2 * name_tp / (len(calls) + len(expected))}
    if len(calls) != len(expected):
        return failed("tool_call", name, "tool.wrong_count", answer, metadata=meta,
                      explanation=f"expected {len(expected)} call(s), got {len(calls)}")
    if order == "exact":
        errors = [check_call(e, c, string_norm, int_as_float) for e, c in zip(expected, calls)]
    else:
        table = [[check_call(e, c, string_norm, int_as_float) for c in calls] for e in expected]
        matching = _max_matching(len(expected), len(calls), [[err is None for err in row] for row in table])
        used = {a for a in matching if a >= 0}
        free = [a for a in range(len(calls)) if a not in used]
        errors = []
        for e, a in enumerate(matching):
            if a >= 0:
                errors.append(None)
            else:
                # report the most specific problem against the calls nobody matched
                candidates = [table[e][x] for x in free] or table[e]
                errors.append(min(candidates, key=lambda c: _SPECIFIC.index(c) if c in _SPECIFIC else 99))
    wrong = [err for err in errors if err]
    total_params = sum(max(len(p), 1) for _, p in expected)
    meta["arg_accuracy"] = 1.0 - (len(wrong) / len(expected)) if expected else 1.0
    if wrong:
        classes = list(dict.fromkeys(wrong))
        return failed("tool_call", name, classes[0], answer, classes=classes, metadata=meta,
                      value=1.0 - len(wrong) / len(expected))
    meta["params_checked"] = total_params
    return passed("tool_call", name, answer=answer, metadata=meta)


class TrajectorySpec(SpecBase):
    """An agentic tool loop judged as a whole: the expected calls were made with correct
    arguments (in order, or in any order), and the model stopped by itself."""

    type: Literal["trajectory"] = "trajectory"
    order: Literal["exact", "any"] = "exact"
    string_norm: Literal["bfcl", "casefold", "none"] = "bfcl"
    int_as_float: bool = True
    allow_extra_calls: bool = True  # calls beyond the expected ones (lookups, retries) are fine
    max_retries: int | None = None  # fail when the model repeats failed calls more often than this


def _as_tool_call(call: dict[str, Any]) -> ToolCall:
    args = call.get("arguments")
    if isinstance(args, dict):
        return ToolCall(str(call.get("name") or ""), "", args, None)
    return ToolCall(str(call.get("name") or ""), str(args), None, "arguments are not a JSON object")


@scorer("trajectory", params=TrajectorySpec, builtin=True)
def score_trajectory(item: Item, response: ResponseView, *, name: str, extract: dict[str, Any], order: str,
                     string_norm: str, int_as_float: bool, allow_extra_calls: bool, max_retries: int | None) -> Score:
    traj = response.trajectory
    if traj is None:
        return unscored("trajectory", name, "evalset.not_agentic", "the item has no tool_results, so there is no tool loop")
    calls = [_as_tool_call(c) for c in traj.get("calls") or []]
    meta = {"steps": traj.get("steps"), "calls": len(calls), "retries": traj.get("retries", 0),
            "stopped": bool(traj.get("stopped"))}
    answer = " -> ".join(f"{c.name}({c.arguments})" for c in calls)[:300] or "(no call)"
    if not traj.get("stopped"):
        return failed("trajectory", name, "trajectory.max_steps", answer, metadata=meta,
                      explanation=f"still calling tools after {traj.get('steps')} steps (max_steps)")
    try:
        expected = normalize_expected(item.expected_tool_calls or [])
    except ValueError as exc:
        return unscored("trajectory", name, "evalset.bad_expected_calls", str(exc))
    table = [[check_call(e, c, string_norm, int_as_float) for c in calls] for e in expected]
    if order == "exact":
        # Each expected call must appear after the previous one's match (other calls may sit between).
        match: list[int] = []
        pos = 0
        for row in table:
            found = next((a for a in range(pos, len(calls)) if row[a] is None), -1)
            match.append(found)
            if found >= 0:
                pos = found + 1
    else:
        match = _max_matching(len(expected), len(calls), [[err is None for err in row] for row in table])
    errors = []
    for e, a in enumerate(match):
        if a >= 0:
            continue
        row = table[e]
        if any(err is None for err in row):
            errors.append("trajectory.order")
        else:
            same_name = [err for err, c in zip(row, calls) if c.name == expected[e][0]]
            errors.append(same_name[0] if same_name else "trajectory.missing_call")
    meta["matched"] = sum(1 for a in match if a >= 0)
    meta["expected"] = len(expected)
    if not allow_extra_calls and len(calls) > len(expected):
        errors.append("trajectory.extra_calls")
    if max_retries is not None and int(traj.get("retries", 0)) > max_retries:
        errors.append("trajectory.too_many_retries")
    if errors:
        classes = list(dict.fromkeys(errors))
        return failed("trajectory", name, classes[0], answer, classes=classes, metadata=meta,
                      value=meta["matched"] / len(expected) if expected else 0.0)
    return passed("trajectory", name, answer=answer, metadata=meta)
