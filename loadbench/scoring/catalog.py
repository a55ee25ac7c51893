"""The scorer catalog: every scorer, built-in or user's, as one entry with one calling convention."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# A scorer is fn(item, response, **params) -> Score | bool | number in [0, 1], sync or async.
# `response` is a ResponseView.  A scorer registered with a params model receives that model's own
# fields (validated once when the scenario loads) plus `name` (its label) and `extract` (the common
# extraction settings); one without a model receives the extra fields of its scenario entry.  A scorer
# that declares a keyword-only `judge_client` parameter is handed the run's judge client.


@dataclass(frozen=True, slots=True)
class ScorerEntry:
    name: str
    fn: Callable[..., Any]
    params: type[BaseModel] | None  # None: any extra fields, passed through as they are
    builtin: bool
    is_async: bool
    needs_judge: bool


CATALOG: dict[str, ScorerEntry] = {}


def _wants_judge(fn: Callable[..., Any]) -> bool:
    try:
        return "judge_client" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def make_entry(name: str, fn: Callable[..., Any], params: type[BaseModel] | None = None, *,
               builtin: bool = False) -> ScorerEntry:
    if not callable(fn):
        raise TypeError("a scorer is a function")
    return ScorerEntry(name, fn, params, builtin, inspect.iscoroutinefunction(fn), _wants_judge(fn))


def scorer(name: str, *, params: type[BaseModel] | None = None,
           builtin: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a scorer under `name`; a scenario then names it as `{type: name, ...params}`.

    `params`, optional, is a pydantic model (subclass `loadbench.ScorerParams`) that validates the
    scenario's fields when the scenario loads, so a misspelt field is a configuration error naming
    the file and line rather than a failure on every request.
    """
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"a scorer name is letters, digits, '-' and '_', got {name!r}")
    existing = CATALOG.get(name)
    if existing is not None and existing.builtin:
        raise ValueError(f"{name!r} is a built-in scorer; pick another name")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        CATALOG[name] = make_entry(name, fn, params, builtin=builtin)
        return fn

    return register


__all__ = ["CATALOG", "ScorerEntry", "make_entry", "scorer"]
