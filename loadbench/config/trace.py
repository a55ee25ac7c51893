"""Trace replay: intended times and requests from a production trace (JSONL or CSV), validated."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .dataset import MAX_PROBLEMS, Item, Message, RequestOverlay
from .errors import ConfigError, Problem
from .scenario import TraceConfig

NS_PER_S = 1_000_000_000
MAX_TRACE_ROWS = 200_000  # every row becomes an item with a pre-built payload per candidate
_UNIT_NS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
_FRACTION = re.compile(r"(\.\d{6})\d+")

# Common one-token English words (one BPE token each with the leading space), so a synthetic
# prompt of N words is close to N tokens for real tokenizers and exactly N for the simulator.
_WORDS = ["time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child", "world", "school", "state", "family", "student", "group", "country", "problem", "hand", "part", "place", "case", "week", "company", "system", "program", "question", "work", "government", "number", "night", "point", "home", "water", "room", "mother", "area", "money", "story", "fact", "month", "lot", "right", "study", "book", "eye", "job", "word", "business", "issue", "side", "kind", "head", "house", "service", "friend", "father", "power", "hour", "game", "line", "end", "member", "law", "car", "city", "community", "name", "team", "minute", "idea", "kid", "body", "information", "back", "parent", "face", "others", "level", "office", "door", "health", "person", "art", "war", "history", "party", "result", "change", "morning", "reason", "research", "girl", "guy", "moment", "air", "teacher", "force", "education"]


@dataclass(slots=True)
class TraceReplay:
    """The schedule and requests of a trace: row i is sent at offsets_ns[i] as items[item_of_row[i]]."""

    offsets_ns: np.ndarray
    item_of_row: list[int]
    items: list[Item]  # the dataset's items (item_field) or one item per row
    span_s: float
    rows: int
    resorted: bool  # rows were not in time order and were sorted


class SequentialOrder:
    """Item order that follows a list (trace rows), one pass; same interface as ItemOrder."""

    __slots__ = ("_rows", "n_items")

    def __init__(self, item_of_row: list[int], n_items: int) -> None:
        self._rows = item_of_row
        self.n_items = n_items

    def at(self, seq: int) -> tuple[int, int]:
        return self._rows[seq], 0


def synthetic_prompt(n_tokens: int, row: int) -> str:
    rng = np.random.Generator(np.random.PCG64(row))
    picks = rng.integers(0, len(_WORDS), max(n_tokens, 1))
    return " ".join(_WORDS[i] for i in picks)


def _parse_time(value: Any, unit: str) -> float:
    """Timestamp in ns (float); raises ValueError with a readable message."""
    if unit == "iso":
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO date-time string, got {value!r}")
        text = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00"))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO date-time: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp() * 1e9
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number ({unit}), got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number * _UNIT_NS[unit]


def _rows(path: Path, shown: str) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError.single(shown, "trace file not found") from None
    except OSError as exc:
        raise ConfigError.single(shown, f"cannot read trace: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError.single(shown, f"not valid UTF-8 (byte {exc.start + 1})") from None
    out: list[tuple[int, dict[str, Any] | None, str | None]] = []
    if path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        for row in reader:
            out.append((reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}, None))
        return out
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            out.append((lineno, None, f"not valid JSON: {exc}"))
            continue
        out.append((lineno, obj, None) if isinstance(obj, dict) else (lineno, None, "each line must be a JSON object"))
    return out


def _int_field(row: dict[str, Any], name: str) -> int:
    value = row.get(name)
    if value is None or value == "":
        raise ValueError("required field is missing")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a token count, got {value!r}") from None
    if number < 0 or number != int(number):
        raise ValueError(f"expected a whole, non-negative token count, got {value!r}")
    return int(number)


def load_trace(cfg: TraceConfig, path: Path, shown: str, dataset: list[Item] | None) -> TraceReplay:
    """Read and check every row; raise ConfigError listing the problems (file, line, field)."""
    problems: list[Problem] = []
    rows = _rows(path, shown)
    if cfg.max_rows is not None:
        rows = rows[: cfg.max_rows]
    if len(rows) > MAX_TRACE_ROWS:
        raise ConfigError.single(shown, f"the trace has {len(rows)} rows; at most {MAX_TRACE_ROWS} are replayed in one run "
                                        "(set load.trace.max_rows or split the trace)")
    ids = {item.id: i for i, item in enumerate(dataset or [])}
    ts_field = cfg.timestamp_field or "timestamp"
    times: list[float] = []
    item_of_row: list[int] = []
    items: list[Item] = [] if cfg.item_field is None else list(dataset or [])
    for lineno, row, problem in rows:
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem(shown, None, "", f"stopped after {MAX_PROBLEMS} problems"))
            break
        if row is None:
            problems.append(Problem(shown, lineno, "", problem or "bad row"))
            continue
        try:
            if ts_field not in row or row[ts_field] in (None, ""):
                raise ValueError("required field is missing")
            t_ns = _parse_time(row[ts_field], cfg.timestamp_unit or "s")
        except ValueError as exc:
            problems.append(Problem(shown, lineno, ts_field, str(exc)))
            continue
        try:
            index = _row_item(cfg, row, lineno, ids, items)
        except _FieldError as exc:
            problems.append(Problem(shown, lineno, exc.field, exc.message))
            continue
        times.append(t_ns)
        item_of_row.append(index)
    if problems:
        raise ConfigError(problems)
    if not times:
        raise ConfigError.single(shown, "the trace has no rows")
    stamps = np.asarray(times, dtype=np.float64)
    order = np.argsort(stamps, kind="stable")
    resorted = bool(np.any(order != np.arange(len(order))))
    stamps = stamps[order]
    offsets = np.round((stamps - stamps[0]) / cfg.time_scale).astype(np.int64)
    rows_in_order = [item_of_row[i] for i in order.tolist()]
    return TraceReplay(offsets, rows_in_order, items, float(offsets[-1]) / NS_PER_S, len(rows_in_order), resorted)


class _FieldError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _row_item(cfg: TraceConfig, row: dict[str, Any], lineno: int, ids: dict[str | None, int], items: list[Item]) -> int:
    if cfg.item_field:
        key = row.get(cfg.item_field)
        if key is None or key == "":
            raise _FieldError(cfg.item_field, "required field is missing")
        index = ids.get(str(key))
        if index is None:
            raise _FieldError(cfg.item_field, f"no dataset item has id {key!r}")
        return index
    overlay: dict[str, Any] = {}
    if cfg.output_tokens_field:
        try:
            out_tokens = _int_field(row, cfg.output_tokens_field)
        except ValueError as exc:
            raise _FieldError(cfg.output_tokens_field, str(exc)) from None
        if out_tokens >= 1:
            overlay["max_tokens"] = out_tokens
            if cfg.fixed_output:
                overlay["min_tokens"] = out_tokens
                overlay["ignore_eos"] = True
    if cfg.request_field:
        value = row.get(cfg.request_field)
        if isinstance(value, str) and value.strip():
            prompt: str | list[Message] = value
        elif isinstance(value, list) and value:
            try:
                prompt = [Message.model_validate(m) for m in value]
            except ValueError as exc:
                raise _FieldError(cfg.request_field, f"not a list of chat messages: {exc}") from None
        else:
            raise _FieldError(cfg.request_field, "expected a prompt string or a list of chat messages")
    else:
        assert cfg.input_tokens_field is not None
        try:
            n_in = _int_field(row, cfg.input_tokens_field)
        except ValueError as exc:
            raise _FieldError(cfg.input_tokens_field, str(exc)) from None
        prompt = synthetic_prompt(n_in, lineno)
    item = Item(id=f"trace-{lineno}", input=prompt, request=RequestOverlay(**overlay), metadata={"tags": ["trace"]})
    item._line = lineno
    items.append(item)
    return len(items) - 1
