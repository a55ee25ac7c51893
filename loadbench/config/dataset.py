"""Eval sets: JSONL records (Inspect / OpenAI-evals field names), validated line by line."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import ConfigError, Problem, format_loc

MAX_PROBLEMS = 25


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class RequestOverlay(BaseModel):
    """Per-item request fields merged over the candidate's `request` settings."""

    model_config = ConfigDict(extra="forbid")
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    # vLLM / SGLang extensions: exactly this many output tokens (trace replay uses them).
    min_tokens: int | None = Field(None, ge=0)
    ignore_eos: bool | None = None


class Turn(BaseModel):
    """A later user turn of a multi-turn session, sent after the candidate's previous reply."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    user: str = Field(min_length=1)
    target: str | list[str] | None = None
    assert_: list[dict[str, Any] | str] | None = Field(None, alias="assert")


class ToolResult(BaseModel):
    """A canned tool answer for agentic loops: used when a call's name matches and its
    arguments contain `arguments` (a subset match; omitted matches any arguments)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None
    content: str | dict[str, Any] | list[Any]
    error: bool = False  # the result reports a failure (a repeat of the call after it is a retry)


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str | None = None
    input: str | list[Message]
    target: str | list[str] | None = Field(None, validation_alias="target")
    ideal: str | list[str] | None = None
    choices: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    request: RequestOverlay = Field(default_factory=RequestOverlay)
    expected_tool_calls: list[dict[str, Any]] | None = None
    expect_no_tool_call: bool = False
    assert_: list[dict[str, Any] | str] | None = Field(None, alias="assert")
    turns: list[Turn] | None = None
    tool_results: list[ToolResult] | None = None
    default_tool_result: str | None = None
    max_steps: int = Field(8, ge=1, le=64)
    _line: int = PrivateAttr(0)  # line in the eval-set file, for error messages

    @property
    def line(self) -> int:
        return self._line

    @model_validator(mode="before")
    @classmethod
    def _coerce_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("id"), int) and not isinstance(data["id"], bool):
            data = {**data, "id": str(data["id"])}
        return data

    @model_validator(mode="after")
    def _ideal_alias(self) -> Item:
        if self.ideal is not None:
            if self.target is not None:
                raise ValueError("give target or ideal (its alias), not both")
            self.target = self.ideal
            self.ideal = None
        if isinstance(self.input, str) and not self.input.strip():
            raise ValueError("input is empty")
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input has no messages")
        if self.turns is not None and not self.turns:
            raise ValueError("turns is empty (leave it out for a single-turn item)")
        return self

    @property
    def is_agentic(self) -> bool:
        """The driver answers this item's tool calls with canned results and continues."""
        return self.tool_results is not None or self.default_tool_result is not None

    @property
    def is_session(self) -> bool:
        return bool(self.turns) or self.is_agentic

    def turn_item(self, turn: int) -> Item:
        """The item as scorers see it at user turn `turn` (0 is the item itself)."""
        if turn == 0 or not self.turns:
            return self
        t = self.turns[turn - 1]
        view = self.model_copy(update={"input": t.user, "target": t.target, "choices": None, "assert_": t.assert_,
                                       "expected_tool_calls": None, "expect_no_tool_call": False})
        view._line = self._line
        return view

    @property
    def tags(self) -> list[str]:
        tags = self.metadata.get("tags") or []
        return [str(t) for t in tags] if isinstance(tags, list) else [str(tags)]

    def messages(self) -> list[dict[str, Any]]:
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        return [m.model_dump(exclude_none=True) for m in self.input]

    def prompt_text(self) -> str:
        """The input flattened to one string (completions API, length buckets, estimates)."""
        if isinstance(self.input, str):
            return self.input
        parts = []
        for m in self.input:
            content = m.content if isinstance(m.content, str) else orjson.dumps(m.content).decode()
            parts.append(f"{m.role}: {content}" if content else f"{m.role}:")
        return "\n".join(parts)

    def last_user_text(self) -> str:
        if isinstance(self.input, str):
            return self.input
        for m in reversed(self.input):
            if m.role == "user" and isinstance(m.content, str):
                return m.content
        return self.prompt_text()


def _union_branch(part: object) -> str | None:
    if isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part):
        return "list" if part.startswith("list[") else "dict" if part.startswith("dict[") else part
    return None


_PY_TYPE = {str: "str", list: "list", dict: "dict", int: "int", float: "float", bool: "bool"}


def _line_problems(shown: str, lineno: int, err: ValidationError, obj: dict[str, Any]) -> list[Problem]:
    """One problem per field.  For a union field, only the errors of the branch matching the
    value's JSON type are kept (a list input gets list errors, not "should be a string")."""
    by_field: dict[str, list[str]] = {}
    for e in err.errors():
        loc = tuple(e["loc"])
        if len(loc) >= 2 and isinstance(loc[0], str) and _union_branch(loc[1]) is not None:
            actual = _PY_TYPE.get(type(obj.get(loc[0])))
            branches = {_union_branch(x["loc"][1]) for x in err.errors() if len(x["loc"]) >= 2 and x["loc"][0] == loc[0]}
            if actual in branches and _union_branch(loc[1]) != actual:
                continue
        # pydantic adds the union member tried ("str", "list[Message]") to the location
        loc = tuple(part for part in loc if not (isinstance(part, str) and ("[" in part or part in ("str", "int"))))
        field = format_loc(loc) or "(record)"
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field" + _did_you_mean(str(loc[-1]), loc[:-1])
        else:
            msg = e["msg"].removeprefix("Value error, ")
        msgs = by_field.setdefault(field, [])
        if msg not in msgs:
            msgs.append(msg)
    return [Problem(shown, lineno, field, "; or ".join(msgs)) for field, msgs in by_field.items()]


def _did_you_mean(key: str, parent: tuple[Any, ...]) -> str:
    fields = {(): Item.model_fields, ("request",): RequestOverlay.model_fields}.get(tuple(parent))
    if fields is None and len(parent) == 2 and parent[0] in ("turns", "tool_results"):
        fields = (Turn if parent[0] == "turns" else ToolResult).model_fields
    if not fields:
        return ""
    close = difflib.get_close_matches(key, [f.alias or name for name, f in fields.items()], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def stable_id(raw_input: Any) -> str:
    return "item-" + hashlib.sha1(orjson.dumps(raw_input, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def load_dataset(path: Path, shown: str | None = None) -> list[Item]:
    """Parse and validate every line; raise ConfigError listing all problems."""
    shown = shown or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError.single(shown, "dataset file not found") from None
    except IsADirectoryError:
        raise ConfigError.single(shown, "dataset path is a directory, expected a .jsonl file") from None
    except OSError as exc:
        raise ConfigError.single(shown, f"cannot read dataset: {exc.strerror}") from None

    items: list[Item] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    lines = raw.split(b"\n")
    for lineno, line in enumerate(lines, start=1):
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem(shown, None, "", f"stopped after {MAX_PROBLEMS} problems"))
            break
        if not line.strip():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(shown, lineno, "", f"not valid UTF-8 (byte {exc.start + 1})"))
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            truncated = lineno == len(lines) and not raw.endswith(b"\n")
            hint = " (the line looks truncated)" if truncated or "unexpected end" in str(exc).lower() else ""
            problems.append(Problem(shown, lineno, "", f"not valid JSON{hint}: {exc}"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(shown, lineno, "", "each line must be a JSON object"))
            continue
        try:
            item = Item.model_validate(obj)
        except ValidationError as err:
            problems.extend(_line_problems(shown, lineno, err, obj))
            continue
        if item.id is None:
            item.id = stable_id(obj.get("input"))
            n = 2
            base = item.id
            while item.id in seen:
                item.id = f"{base}-{n}"
                n += 1
        elif item.id in seen:
            problems.append(Problem(shown, lineno, "id", f"duplicate id {item.id!r} (first on line {seen[item.id]})"))
            continue
        seen[item.id] = lineno
        item._line = lineno
        items.append(item)
    if problems:
        raise ConfigError(problems)
    if not items:
        raise ConfigError.single(shown, "dataset has no records")
    return items
