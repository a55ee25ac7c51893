"""The results log: one JSON line per scheduled request, append-only, flushed every second."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .records import RESULT_FIELDS, RequestResult, result_from_dict

_OPTS = orjson.OPT_APPEND_NEWLINE


class ResultsLog:
    """Writes records as they complete.  Python's buffer batches the writes; `flush`
    (called at least once a second by the run's ticker) hands them to the OS, so a crash
    loses at most the last second and a SIGKILL leaves at most one torn line."""

    def __init__(self, path: Path, *, store_text: bool = True) -> None:
        self.path = path
        self._f: IO[bytes] = open(path, "ab", buffering=1 << 16)
        self._store_text = store_text
        self.lines = 0

    def __call__(self, r: RequestResult) -> None:
        if not self._store_text:
            text, reasoning = r.text, r.reasoning
            r.text = r.reasoning = ""
            self._f.write(orjson.dumps(r, option=_OPTS))
            r.text, r.reasoning = text, reasoning
        else:
            self._f.write(orjson.dumps(r, option=_OPTS))
        self.lines += 1

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


def iter_results(path: Path) -> Iterator[tuple[int, RequestResult | None, str | None]]:
    """Yield (line number, record, problem) for each line; a torn or bad line gives a
    problem instead of a record and never stops the reading."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row: Any = orjson.loads(line)
            except orjson.JSONDecodeError:
                torn = not line.endswith(b"\n")
                yield lineno, None, "torn last line (the run was cut while writing it)" if torn else "not valid JSON"
                continue
            if not isinstance(row, dict) or "candidate" not in row:
                yield lineno, None, "not a result record"
                continue
            try:
                yield lineno, result_from_dict(row), None
            except TypeError as exc:
                yield lineno, None, f"missing fields: {exc}"


__all__ = ["RESULT_FIELDS", "ResultsLog", "iter_results"]
