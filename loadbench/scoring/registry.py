"""Scorer registry: specs from items and scenario, promptfoo aliases, and scoring one record."""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from ..config.dataset import Item
from ..config.errors import Problem, format_loc
from ..pacing.records import OK, RequestResult
from . import instructions, structured, tools  # noqa: F401  (each registers its built-in scorers)
from .basic import SpecBase
from .catalog import CATALOG, ScorerEntry
from .catalog import scorer as _register
from .judge import JudgeClient
from .scores import FAIL, PASS, SKIPPED, ResponseView, Score, build_view, item_verdict, unscored


class CustomSpec(SpecBase):
    """A scorer named by `module:function` in the scenario (the function need not be registered)."""

    type: str = "custom"
    function: str
    params: dict[str, Any] = {}


# The scenario-facing names: the built-ins (and `custom`), in the order the docs list them.
SCORERS: tuple[str, ...] = (*(name for name, entry in CATALOG.items() if entry.builtin), "custom")

# promptfoo assertion names -> (loadbench type, fields to set, where promptfoo's `value` goes)
ALIASES: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "equals": ("match", {"mode": "exact", "normalize": "none"}, "target"),
    "contains": ("match", {"mode": "contains", "normalize": "none"}, "target"),
    "icontains": ("match", {"mode": "contains", "normalize": ["casefold"]}, "target"),
    "contains-any": ("match", {"mode": "contains", "normalize": "none"}, "target"),
    "icontains-any": ("match", {"mode": "contains", "normalize": ["casefold"]}, "target"),
    "contains-all": ("match", {"mode": "contains", "normalize": "none", "all_of": True}, "target"),
    "icontains-all": ("match", {"mode": "contains", "normalize": ["casefold"], "all_of": True}, "target"),
    "starts-with": ("match", {"mode": "prefix", "normalize": "none"}, "target"),
    "regex": ("match", {"mode": "regex"}, "target"),
    "is-json": ("json", {"parse": "strict"}, "schema"),
    "contains-json": ("json", {"parse": "extract"}, "schema"),
    "is-valid-openai-tools-call": ("tool_call", {}, None),
    "llm-rubric": ("judge", {"template": "rubric"}, "criterion"),
    "model-graded-closedqa": ("judge", {"template": "qa"}, "criterion"),
    "factuality": ("judge", {"template": "fact"}, "target"),
    "is-refusal": ("refusal", {"expect_refusal": True}, None),
    "finish-reason": ("finish_reason", {}, "value"),
    "latency": ("latency", {}, "threshold_ms"),
    "cost": ("cost", {}, "max_usd"),
    "python": ("custom", {}, "function"),
}


# promptfoo spells the limit of `cost` and `latency` as `threshold` (USD; milliseconds).
PROMPTFOO_THRESHOLDS: dict[str, tuple[str, float]] = {"cost": ("max_usd", 1.0), "latency": ("max_s", 1e-3)}

# promptfoo assertions loadbench does not run, and what to use instead (the message a user sees).
PROMPTFOO_REFUSED: dict[str, str] = {
    "javascript": "runs JavaScript; write the check in Python (@loadbench.scorer or {type: custom, function: module:function})",
    "webhook": "sends each response to a URL; a scorer must not reach hosts the operator did not allow: use a Python scorer",
    "similar": "needs an embedding model; use {type: judge} or a Python scorer with your embedder",
    "levenshtein": "use {type: match, mode: fuzzy, fuzzy_threshold: 0.85} (a similarity ratio, not an edit distance)",
    "rouge-n": "n-gram overlap is not built in; use {type: match, mode: fuzzy} or a Python scorer",
    "bleu": "n-gram overlap is not built in; use {type: match, mode: fuzzy} or a Python scorer",
    "perplexity": "needs token log-probabilities, which loadbench does not request",
    "perplexity-score": "needs token log-probabilities, which loadbench does not request",
    "answer-relevance": "use {type: judge, template: rubric, criterion: ...}",
    "context-faithfulness": "use {type: judge, template: rubric, criterion: ...}",
    "context-recall": "use {type: judge, template: rubric, criterion: ...}",
    "context-relevance": "use {type: judge, template: rubric, criterion: ...}",
    "g-eval": "use {type: judge, template: rubric, criterion: ...}",
    "select-best": "compares candidates inside one test; loadbench compares them over the whole run (McNemar)",
    "human": "use `loadbench review export` / `import` for human labels",
    "moderation": "needs a moderation endpoint; use {type: judge} or a Python scorer",
    "classifier": "needs a classifier model; use a Python scorer",
    "is-xml": "XML is not built in; use a Python scorer", "contains-xml": "XML is not built in; use a Python scorer",
    "is-sql": "SQL is not built in; use a Python scorer", "contains-sql": "SQL is not built in; use a Python scorer",
    "is-html": "HTML is not built in; use a Python scorer", "contains-html": "HTML is not built in; use a Python scorer",
}


@dataclass(slots=True)
class CompiledSpec:
    """One scorer of one item, ready to call: its validated spec and its function with the params bound."""

    spec: Any  # the validated entry: type, label, gating
    call: Callable[..., Any]  # call(item, response) -> Score | bool | number; judges also take judge_client=
    is_async: bool = False
    needs_judge: bool = False
    negate: bool = False  # promptfoo `not-` on a scorer without its own negation
    threshold: float = 1.0  # a number answer passes at or above this


def scorer(name: str, *, params: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a scorer: fn(item, response, **params) -> Score | bool | number, sync or async.

    A scenario then names it as `{type: name, ...params}`.  With `params` (a subclass of
    `loadbench.ScorerParams`), the fields are validated when the scenario loads.
    """
    if name in ALIASES or name == "custom":
        raise ValueError(f"{name!r} is a built-in scorer; pick another name")
    if params is not None and not (isinstance(params, type) and issubclass(params, SpecBase)):
        raise TypeError("params must be a subclass of loadbench.ScorerParams")
    return _register(name, params=params)


class RegisteredSpec(SpecBase):
    """The spec of a scorer registered without a params model: everything else goes to it as params."""

    model_config = ConfigDict(extra="allow")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


def _legacy_signature(fn: Callable[..., Any]) -> bool:
    """module:function scorers written as fn(item, view, params) (before one signature)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    return len(params) == 3 and all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _legacy_adapter(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(item: Item, response: ResponseView, **params: Any) -> Any:
        return fn(item, response, params)

    return call


def _from_alias(raw: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    raw = dict(raw)
    kind = str(raw.get("type", ""))
    negate = False
    if kind.startswith("not-"):
        kind = kind[4:]
        negate = True
    if kind in PROMPTFOO_REFUSED:
        raise ValueError(f"the promptfoo assertion {kind!r} is not supported: {PROMPTFOO_REFUSED[kind]}")
    if kind in PROMPTFOO_THRESHOLDS and "threshold" in raw:
        field, scale = PROMPTFOO_THRESHOLDS[kind]
        if field in raw:
            raise ValueError(f"{kind}: give {field} or promptfoo's threshold, not both")
        try:
            raw[field] = float(raw.pop("threshold")) * scale
        except (TypeError, ValueError):
            raise ValueError(f"{kind}: threshold must be a number") from None
    if kind in ALIASES:
        target_type, fields, value_key = ALIASES[kind]
        value = raw.pop("value", None)
        raw.update(fields)
        raw["type"] = target_type
        if value is not None and value_key:
            if value_key == "threshold_ms":
                raw["max_s"] = float(value) / 1000.0
            else:
                raw[value_key] = value
        if kind == "is-refusal" and negate:
            raw["expect_refusal"] = False
            negate = False
        kind = target_type
    elif negate:
        raw["type"] = kind
    if negate and kind == "match":
        raw["negate"] = not raw.get("negate", False)
        negate = False
    raw.pop("weight", None)
    raw.pop("metric", None)
    if "threshold" in raw and kind not in ("judge",):
        raw.pop("threshold")
    return raw, negate


def _validate(model: type[BaseModel], data: dict[str, Any], kind: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        where = format_loc(tuple(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][-1]), list(model.model_fields), n=1)
            msg = "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
        raise ValueError(f"{kind}: {where + ': ' if where else ''}{msg}") from None


def _entry_for(kind: str, data: dict[str, Any]) -> tuple[ScorerEntry, Any, dict[str, Any]]:
    """The catalog entry of a scorer spec, the validated spec and the params its function is called with."""
    if kind == "custom":
        spec = _validate(CustomSpec, data, kind)
        fn = load_callable(spec.function)
        call = _legacy_adapter(fn) if _legacy_signature(fn) else fn
        # The adapter of an async legacy scorer returns its coroutine: still awaited as async.
        entry = ScorerEntry("custom", call, None, False, inspect.iscoroutinefunction(fn), False)
        return entry, spec, dict(spec.params)
    entry = CATALOG.get(kind)
    if entry is None:
        known = [*SCORERS, *(n for n in CATALOG if n not in SCORERS), *ALIASES]
        close = difflib.get_close_matches(kind, known, n=1)
        raise ValueError(f"unknown scorer {kind!r}" + (f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(SCORERS)}"))
    if entry.params is None:
        spec = _validate(RegisteredSpec, data, kind)
        return entry, spec, spec.params
    spec = _validate(entry.params, data, kind)
    return entry, spec, spec.scorer_params()


def compile_spec(raw: dict[str, Any] | str) -> CompiledSpec:
    """Validate one scorer spec and bind its params.  Raises ValueError with a readable message."""
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict) or "type" not in raw:
        raise ValueError("a scorer needs a type")
    data, negate = _from_alias(raw)
    entry, spec, params = _entry_for(data["type"], data)
    threshold = params.get("threshold", 1.0)
    return CompiledSpec(spec, functools.partial(entry.fn, **params), entry.is_async, entry.needs_judge, negate,
                        float(threshold) if isinstance(threshold, (int, float)) else 1.0)


def load_callable(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"custom scorer must be named as module:function, got {ref!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{ref!r} is not a callable")
    return fn


def default_specs(item: Item) -> list[dict[str, Any]]:
    """What to check when neither the item nor the scenario says: infer from the item."""
    if item.is_agentic:
        # A tool loop: the calls over the steps, then the final answer if the item has one.
        specs: list[dict[str, Any]] = [{"type": "trajectory"}] if item.expected_tool_calls else []
        if item.target is not None:
            specs.append({"type": "match", "mode": "contains"})
        return specs
    if item.expected_tool_calls or item.expect_no_tool_call:
        return [{"type": "tool_call"}]
    rf = item.request.response_format or {}
    if rf.get("type") == "json_schema":
        spec = {"type": "json"}
        if isinstance(item.target, str) and item.target.strip().startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):  # a non-JSON target: schema check only
                spec["expected"] = orjson.loads(item.target)
        return [spec]
    if item.target is None:
        return []
    if item.choices and isinstance(item.target, str) and len(item.target.strip()) == 1:
        return [{"type": "choice"}]
    return [{"type": "match"}]


def compile_item_specs(items: list[Item], defaults: list[dict[str, Any] | str], shown: str,
                       lines: list[int]) -> tuple[list[list[CompiledSpec]], list[Problem]]:
    problems: list[Problem] = []
    compiled: list[list[CompiledSpec]] = []
    cache: dict[str, CompiledSpec] = {}
    default_compiled: list[CompiledSpec] | None = None
    for index, item in enumerate(items):
        raw_list = item.assert_
        out: list[CompiledSpec] = []
        if raw_list is None and defaults:
            if default_compiled is None:
                default_compiled = []
                for j, raw in enumerate(defaults):
                    try:
                        default_compiled.append(compile_spec(raw))
                    except ValueError as exc:
                        problems.append(Problem("scenario", None, f"scoring.default_assert[{j}]", str(exc)))
            compiled.append(default_compiled)
            continue
        raw_list = raw_list if raw_list is not None else default_specs(item)
        for j, raw in enumerate(raw_list):
            key = repr(raw)
            try:
                if key not in cache:
                    cache[key] = compile_spec(raw)
                out.append(cache[key])
            except ValueError as exc:
                problems.append(Problem(shown, lines[index] if index < len(lines) else None, f"assert[{j}]", str(exc)))
        compiled.append(out)
    return compiled, problems


def compile_turn_specs(items: list[Item], defaults: list[dict[str, Any] | str],
                       shown: str) -> tuple[dict[tuple[int, int], list[CompiledSpec]], list[Problem]]:
    """Scorers of the later turns of multi-turn items, keyed by (item index, turn)."""
    out: dict[tuple[int, int], list[CompiledSpec]] = {}
    problems: list[Problem] = []
    for index, item in enumerate(items):
        for turn in range(1, len(item.turns or ()) + 1):
            (compiled,), found = compile_item_specs([item.turn_item(turn)], defaults, shown, [item.line])
            out[(index, turn)] = compiled
            problems.extend(Problem(p.file, p.line, f"turns[{turn - 1}].{p.field}", p.message)
                            if p.field.startswith("assert[") else p for p in found)
    return out, problems


def _negated(score: Score) -> Score:
    if score.status == PASS:
        score.status, score.value, score.error_class = FAIL, 0.0, f"negated.{score.scorer}"
        score.error_classes = [score.error_class]
    elif score.status == FAIL:
        score.status, score.value, score.error_class, score.error_classes = PASS, 1.0, None, []
    return score


def _as_score(c: CompiledSpec, out: Any) -> Score:
    """A scorer's answer as a Score: a Score as it is, a bool, or a number (pass at >= threshold)."""
    if isinstance(out, Score):
        return out
    spec = c.spec
    name, kind = spec.label, spec.type
    if isinstance(out, bool):
        return Score(kind, name, PASS if out else FAIL, 1.0 if out else 0.0, None if out else f"{kind}.fail",
                     [] if out else [f"{kind}.fail"], gating=spec.gating)
    if isinstance(out, (int, float)):
        ok = float(out) >= 1.0 or (0.0 <= float(out) <= 1.0 and float(out) >= c.threshold)
        return Score(kind, name, PASS if ok else FAIL, float(out), None if ok else f"{kind}.below_threshold",
                     [] if ok else [f"{kind}.below_threshold"], gating=spec.gating)
    return unscored(kind, name, "scorer.bad_return", f"scorer returned {type(out).__name__}")


def _failed_scorer(c: CompiledSpec, exc: Exception) -> Score:
    # A scorer raising is the scorer's problem, not the candidate's: unscored, with the reason.
    return unscored(c.spec.type, c.spec.label, "scorer.exception", f"{type(exc).__name__}: {exc}")


def _settle(c: CompiledSpec, score: Score) -> Score:
    score.gating = c.spec.gating
    return _negated(score) if c.negate else score


def score_sync(specs: list[CompiledSpec], item: Item, view: ResponseView) -> tuple[list[Score], list[CompiledSpec]]:
    """Run every synchronous scorer; return the scores and the specs still to run (async ones)."""
    scores: list[Score] = []
    pending: list[CompiledSpec] = []
    for c in specs:
        if c.is_async:
            pending.append(c)
            continue
        try:
            score = _as_score(c, c.call(item, view))
        except Exception as exc:
            score = _failed_scorer(c, exc)
        scores.append(_settle(c, score))
    return scores, pending


async def score_async(pending: list[CompiledSpec], item: Item, view: ResponseView, judge: JudgeClient | None) -> list[Score]:
    out = []
    for c in pending:
        try:
            answer = await (c.call(item, view, judge_client=judge) if c.needs_judge else c.call(item, view))
            score = _as_score(c, answer)
        except Exception as exc:
            score = _failed_scorer(c, exc)
        out.append(_settle(c, score))
    return out


def finalize(r: RequestResult, scores: list[Score]) -> None:
    r.scores = [s.as_dict() for s in scores]
    r.verdict = item_verdict(scores) if scores else None


def skipped_verdict(r: RequestResult, specs: list[CompiledSpec]) -> None:
    """A request that failed is not scored: every scorer is `skipped`."""
    r.scores = [{"scorer": c.spec.type, "name": c.spec.label, "status": SKIPPED, "value": None,
                 "error_class": f"request.{r.error_class or r.status}", "gating": c.spec.gating} for c in specs]
    r.verdict = SKIPPED if specs else None


def needs_scoring(r: RequestResult) -> bool:
    return r.status == OK


__all__ = [
    "ALIASES",
    "CATALOG",
    "SCORERS",
    "CompiledSpec",
    "RegisteredSpec",
    "build_view",
    "compile_item_specs",
    "compile_spec",
    "compile_turn_specs",
    "finalize",
    "needs_scoring",
    "score_async",
    "score_sync",
    "scorer",
    "skipped_verdict",
]
