"""The structured-output scorer: parse stages with error classes, JSON-Schema keywords, field accuracy."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, best_match
from pydantic import Field, field_validator

from ..config.dataset import Item
from .basic import SpecBase
from .catalog import scorer
from .scores import ResponseView, Score, failed, passed, unfence, unscored


class JsonSpec(SpecBase):
    type: Literal["json"] = "json"
    parse: Literal["strict", "unfence", "extract"] | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    expected: Any = None
    match: Literal["exact", "subset"] = "subset"
    format_check: bool = True
    number_tol: float = Field(0.0, ge=0)
    ignore_paths: list[str] = Field(default_factory=list)

    model_config = {**SpecBase.model_config, "populate_by_name": True}

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            try:
                Draft202012Validator.check_schema(v)
            except SchemaError as exc:
                raise ValueError(f"the JSON schema is itself invalid: {exc.message}") from None
        return v


class _Duplicate(Exception):
    """A JSON object repeats a key (Python's json would silently keep the last)."""


class _NonStandard(Exception):
    """NaN or Infinity: Python's json accepts them, JSON does not."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise _NonStandard(name)


def strict_loads(text: str) -> Any:
    """json.loads that rejects NaN/Infinity and duplicate keys (Python accepts both)."""
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)


def _balanced_candidates(text: str) -> list[str]:
    """Top-level {...} / [...] spans, honouring strings and escapes."""
    out = []
    depth = 0
    start = -1
    in_str = False
    esc = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            if depth == 0:
                start = i
            depth += 1
        elif ch in "}]" and depth:
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
    return out


def parse_json_response(text: str, mode: str) -> tuple[Any, str | None, str | None, dict[str, bool]]:
    """(value, error_class, message, flags) for one response under a parse mode."""
    flags: dict[str, bool] = {}
    s = text.strip()
    if not s:
        return None, "json.empty", "empty response", flags
    body, fenced = unfence(s)
    if fenced:
        if mode == "strict":
            return None, "json.fenced", "the JSON is wrapped in a markdown fence", flags
        flags["fenced"] = True
    try:
        return strict_loads(body), None, None, flags
    except _Duplicate as exc:
        return None, "json.duplicate_key", f"duplicate key {exc.args[0]!r}", flags
    except _NonStandard as exc:
        return None, "json.nonstandard_number", f"{exc.args[0]} is not valid JSON", flags
    except json.JSONDecodeError as exc:
        first_error = exc
    if mode == "extract":
        candidates = _balanced_candidates(body)
        parsed = []
        for cand in candidates:
            try:
                parsed.append(strict_loads(cand))
            except (json.JSONDecodeError, _Duplicate, _NonStandard):
                continue
        if parsed:
            if len(parsed) > 1:
                flags["multiple_json"] = True
            return parsed[-1], None, None, flags
    stripped = body.lstrip()
    if first_error.msg.startswith("Extra data") or (stripped[:1] not in "{[\"-0123456789tfn" and ("{" in body or "[" in body)):
        return None, "json.extra_text", "text before or after the JSON", flags
    if first_error.msg.startswith(("Expecting", "Unterminated")) and first_error.pos >= len(body.rstrip()) - 1:
        return None, "json.truncated", f"JSON ends early: {first_error.msg}", flags
    return None, "json.invalid", f"{first_error.msg} at char {first_error.pos}", flags


def _norm_path(path: tuple[Any, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _equal(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, abs_tol=tol, rel_tol=0) if tol else a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y, tol) for x, y in zip(a, b))
    return a == b


def field_accuracy(expected: Any, got: Any, *, subset: bool, tol: float, ignore: set[str], path: str = "$") -> tuple[int, int, list[str]]:
    """(correct leaf fields, expected leaf fields, wrong paths).  null equals null; a
    missing key is not null."""
    if path in ignore:
        return 0, 0, []
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            n = max(_count_leaves(expected), 1)
            return 0, n, [path]
        correct = total = 0
        wrong: list[str] = []
        for key, value in expected.items():
            sub = f"{path}.{key}"
            if key not in got:
                n = max(_count_leaves(value), 1)
                total += n
                wrong.append(sub)
                continue
            c, t, w = field_accuracy(value, got[key], subset=subset, tol=tol, ignore=ignore, path=sub)
            correct, total, wrong = correct + c, total + t, wrong + w
        if not subset:
            extra = [k for k in got if k not in expected and f"{path}.{k}" not in ignore]
            total += len(extra)
            wrong += [f"{path}.{k}" for k in extra]
        return correct, total, wrong
    ok = _equal(expected, got, tol)
    return (1 if ok else 0), 1, ([] if ok else [path])


def _count_leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_leaves(v) for v in value.values())
    return 1


def schema_from_item(item: Item) -> dict[str, Any] | None:
    rf = item.request.response_format or {}
    if rf.get("type") == "json_schema":
        js = rf.get("json_schema") or {}
        schema = js.get("schema")
        return schema if isinstance(schema, dict) else None
    return None


_VALIDATORS: dict[tuple[int, bool], tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator(schema: dict[str, Any], format_check: bool) -> Draft202012Validator:
    """Validators are built once per schema object (items share their compiled specs)."""
    key = (id(schema), format_check)
    hit = _VALIDATORS.get(key)
    if hit is None or hit[0] is not schema:
        hit = (schema, Draft202012Validator(schema, format_checker=FormatChecker() if format_check else None))
        _VALIDATORS[key] = hit
    return hit[1]


@scorer("json", params=JsonSpec, builtin=True)
def score_json(item: Item, response: ResponseView, *, name: str, extract: dict[str, Any], parse: str | None,
               schema: dict[str, Any] | None, expected: Any, match: str, format_check: bool, number_tol: float,
               ignore_paths: list[str]) -> Score:
    view = response
    rf = item.request.response_format
    mode = parse or ("strict" if rf else "unfence")
    if view.finish_reason == "length":
        return failed("json", name, "json.truncated", view.text[:200], explanation="finish_reason=length (max_tokens hit)")
    if view.finish_reason == "content_filter":
        return failed("json", name, "response.content_filter", None)
    if view.refusal:
        return failed("json", name, "json.refusal", view.refusal[:200])
    value, error, message, flags = parse_json_response(view.text, mode)
    if error:
        return failed("json", name, error, view.text[:200], explanation=message)
    if schema is None:
        schema = schema_from_item(item)
    meta: dict[str, Any] = dict(flags)
    if schema is not None:
        try:
            validator = _validator(schema, format_check)
            errors = list(validator.iter_errors(value))
        except SchemaError as exc:
            return unscored("json", name, "evalset.invalid_schema", exc.message)
        if errors:
            primary = best_match(errors)
            classes = list(dict.fromkeys(f"schema.{e.validator}" for e in errors))
            first = f"schema.{primary.validator}"
            classes.remove(first)
            meta["violations"] = [{"keyword": e.validator, "path": _norm_path(tuple(e.absolute_path)), "message": e.message[:200]}
                                  for e in errors[:10]]
            return failed("json", name, first, json.dumps(value)[:200], classes=[first, *classes],
                          explanation=primary.message[:300], metadata=meta)
    if expected is not None:
        correct, total, wrong = field_accuracy(expected, value, subset=match == "subset",
                                               tol=number_tol, ignore=set(ignore_paths))
        meta["field_accuracy"] = (correct / total) if total else 1.0
        if wrong:
            meta["wrong_fields"] = wrong[:20]
            return failed("json", name, "json.value_mismatch", json.dumps(value)[:200], value=meta["field_accuracy"],
                          metadata=meta)
    return passed("json", name, answer=json.dumps(value)[:200], metadata=meta or None)
