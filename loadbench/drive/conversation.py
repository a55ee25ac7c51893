"""Sessions: the follow-up requests of multi-turn items and agentic tool loops (pure, no I/O)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..config.dataset import Item, ToolResult
from ..pacing.records import OK, RequestResult

NS_PER_S = 1_000_000_000
NO_RESULT = '{"error": "no result is available for this call"}'


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """Pause between a reply and the user's next turn (seconds), drawn per (seed, session, turn)."""

    dist: str = "fixed"  # fixed | uniform | exponential | lognormal
    mean_s: float = 0.0
    min_s: float = 0.0
    max_s: float | None = None
    sigma: float = 0.5  # lognormal shape

    def draw_ns(self, seed: int, seq: int, turn: int) -> int:
        if self.mean_s <= 0 and self.dist != "uniform":
            return 0
        u = _unit(seed, seq, turn, 0)
        if self.dist == "fixed":
            value = self.mean_s
        elif self.dist == "uniform":
            high = self.max_s if self.max_s is not None else 2 * self.mean_s - self.min_s
            value = self.min_s + u * max(high - self.min_s, 0.0)
        elif self.dist == "exponential":
            value = -self.mean_s * math.log1p(-u)
        elif self.dist == "lognormal":
            # Box-Muller from two independent draws; mu chosen so the mean is mean_s.
            z = math.sqrt(-2.0 * math.log1p(-u)) * math.cos(2 * math.pi * _unit(seed, seq, turn, 1))
            value = math.exp(math.log(self.mean_s) - self.sigma**2 / 2 + self.sigma * z)
        else:
            raise ValueError(f"unknown think-time distribution {self.dist!r}")
        value = max(value, self.min_s)
        if self.max_s is not None:
            value = min(value, self.max_s)
        return round(value * NS_PER_S)




def _unit(*parts: int) -> float:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def canonical_args(arguments: Any) -> str:
    try:
        return orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(arguments)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().casefold() == actual.strip().casefold()
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and not isinstance(expected, bool):
        return float(expected) == float(actual)
    return bool(expected == actual)


def match_tool_result(item: Item, name: str, arguments: Any) -> tuple[str, str, bool]:
    """(content, how it was found: canned | default | none, whether it reports an error)."""
    args = arguments if isinstance(arguments, dict) else {}
    for tr in item.tool_results or []:
        if tr.name != name:
            continue
        if tr.arguments and not all(k in args and _same(v, args[k]) for k, v in tr.arguments.items()):
            continue
        return _content(tr), "canned", tr.error
    if item.default_tool_result is not None:
        return item.default_tool_result, "default", True
    return NO_RESULT, "none", True


def _content(tr: ToolResult) -> str:
    return tr.content if isinstance(tr.content, str) else orjson.dumps(tr.content).decode()


def _parse_args(raw: str) -> Any:
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return raw


@dataclass(slots=True)
class _Session:
    messages: list[dict[str, Any]]
    turn_start_step: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    failed_calls: set[str] = field(default_factory=set)


class ConversationDriver:
    """Decides, after each reply of a session item, what the next request is.

    Multi-turn: the candidate's actual reply joins the history, then the next user turn,
    intended a think time after the reply completed.  Agentic: tool calls are answered with
    the item's canned results and the model is asked again at once, up to `max_steps`
    requests per user turn.  Requests of one session share `seq`; each gets its own record.
    """

    def __init__(self, items: list[Item], first_messages: list[list[dict[str, Any]]], think: ThinkTime, seed: int) -> None:
        self._items = items
        self._first = first_messages
        self._think = think
        self._seed = seed
        self._open: dict[int, _Session] = {}

    @property
    def open_sessions(self) -> int:
        return len(self._open)

    def messages(self, seq: int) -> list[dict[str, Any]]:
        return self._open[seq].messages

    def follow_up(self, r: RequestResult) -> RequestResult | None:
        item = self._items[r.item_index]
        if not item.is_session:
            return None
        s = self._open.get(r.seq)
        if s is None:
            s = self._open[r.seq] = _Session(list(self._first[r.item_index]))
        nxt = self._next(item, s, r)
        if nxt is None:
            self._open.pop(r.seq, None)
            r.last = True
        else:
            r.last = False
        return nxt

    def _next(self, item: Item, s: _Session, r: RequestResult) -> RequestResult | None:
        calls = r.tool_calls if r.status == OK and item.is_agentic else None
        if calls:
            steps_in_turn = r.step - s.turn_start_step + 1
            self._record_calls(item, s, r, calls)
            if steps_in_turn < item.max_steps:
                r.phase = "tool"
                return self._new(r, turn=r.turn, intended_ns=r.done_ns)
            r.phase = "answer"
            r.trajectory = self._trajectory(s, steps_in_turn, stopped=False)
            return None  # the turn never ended by itself: the session cannot go on meaningfully
        r.phase = "answer"
        if item.is_agentic:
            r.trajectory = self._trajectory(s, r.step - s.turn_start_step + 1, stopped=r.status == OK)
        if r.status != OK or not item.turns or r.turn >= len(item.turns):
            return None
        s.messages.append({"role": "assistant", "content": r.text})
        s.messages.append({"role": "user", "content": item.turns[r.turn].user})
        s.turn_start_step = r.step + 1
        s.calls, s.retries, s.failed_calls = [], 0, set()
        think_ns = self._think.draw_ns(self._seed, r.seq, r.turn + 1)
        return self._new(r, turn=r.turn + 1, intended_ns=r.done_ns + think_ns)

    def _record_calls(self, item: Item, s: _Session, r: RequestResult, calls: list[dict[str, Any]]) -> None:
        assistant_calls = []
        results = []
        for i, call in enumerate(calls):
            fn = call.get("function") or {}
            name = str(fn.get("name") or "")
            raw = fn.get("arguments") or ""
            args = _parse_args(raw)
            call_id = call.get("id") or f"call_{r.seq}_{r.step}_{i}"
            content, how, is_error = match_tool_result(item, name, args)
            key = name + "\0" + canonical_args(args)
            retry = key in s.failed_calls
            s.retries += retry
            if is_error:
                s.failed_calls.add(key)
            s.calls.append({"step": r.step - s.turn_start_step, "name": name, "arguments": args, "result": how,
                            "error": is_error, "retry": retry})
            assistant_calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}})
            results.append({"role": "tool", "tool_call_id": call_id, "content": content})
        s.messages.append({"role": "assistant", "content": r.text or None, "tool_calls": assistant_calls})
        s.messages.extend(results)

    @staticmethod
    def _trajectory(s: _Session, steps: int, *, stopped: bool) -> dict[str, Any]:
        return {"calls": list(s.calls), "steps": steps, "stopped": stopped, "retries": s.retries}

    @staticmethod
    def _new(r: RequestResult, *, turn: int, intended_ns: int) -> RequestResult:
        return RequestResult(
            seq=r.seq, candidate=r.candidate, item_id=r.item_id, item_index=r.item_index, epoch=r.epoch,
            intended_ns=intended_ns, in_window=r.in_window, turn=turn, step=r.step + 1,
        )


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of the conversation so far (for token estimates when usage is missing)."""
    total = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            total += len(content)
        for call in m.get("tool_calls") or ():
            total += len((call.get("function") or {}).get("arguments") or "")
    return total
