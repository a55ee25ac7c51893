"""Score values, the response views scorers read, and the shared answer extractors (pure)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..pacing.records import OK, RequestResult

PASS = "pass"
FAIL = "fail"
UNSCORED = "unscored"
SKIPPED = "skipped"
VERDICTS = (PASS, FAIL, UNSCORED, SKIPPED)


@dataclass(slots=True)
class Score:
    """One scorer's verdict on one response.

    `fail`: the candidate was wrong.  `unscored`: the scorer could not decide (judge down,
    verdict unparseable, broken item): never counted as fail.  `skipped`: the request failed.
    """

    scorer: str
    name: str
    status: str
    value: float | None = None
    error_class: str | None = None
    error_classes: list[str] = field(default_factory=list)
    answer: str | None = None
    explanation: str | None = None
    gating: bool = True
    cost_usd: float = 0.0
    metadata: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "scorer": self.scorer, "name": self.name, "status": self.status, "value": self.value,
            "error_class": self.error_class, "gating": self.gating,
        }
        if self.error_classes and self.error_classes != [self.error_class]:
            out["error_classes"] = self.error_classes
        if self.answer is not None:
            out["answer"] = self.answer[:500]
        if self.explanation:
            out["explanation"] = self.explanation[:1000]
        if self.cost_usd:
            out["cost_usd"] = self.cost_usd
        if self.metadata:
            out["metadata"] = self.metadata
        return out


def passed(scorer: str, name: str, value: float = 1.0, answer: str | None = None, **kw: Any) -> Score:
    return Score(scorer, name, PASS, value, answer=answer, **kw)


def failed(scorer: str, name: str, error_class: str, answer: str | None = None, *, value: float = 0.0,
           classes: list[str] | None = None, **kw: Any) -> Score:
    return Score(scorer, name, FAIL, value, error_class, classes or [error_class], answer=answer, **kw)


def unscored(scorer: str, name: str, error_class: str, explanation: str | None = None, **kw: Any) -> Score:
    return Score(scorer, name, UNSCORED, None, error_class, [error_class], explanation=explanation, **kw)


def item_verdict(scores: list[Score]) -> str:
    """pass iff every gating scorer passed; unscored if none failed but one could not decide."""
    gating = [s for s in scores if s.gating]
    if not gating:
        return UNSCORED
    if any(s.status == FAIL for s in gating):
        return FAIL
    if any(s.status == UNSCORED for s in gating):
        return UNSCORED
    return PASS


# ------------------------------------------------------------------------------- views

_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments_raw: str
    arguments: Any  # parsed JSON, or None when it did not parse
    parse_error: str | None


@dataclass(slots=True)
class ResponseView:
    """What scorers may look at: the candidate's answer, never how it was measured."""

    text: str
    raw_text: str
    tool_calls: list[ToolCall]
    refusal: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    token_source: str
    cost_usd: float
    ttft_s: float | None
    latency_s: float | None
    tpot_s: float | None
    trajectory: dict[str, Any] | None = None  # agentic items: the calls made over the turn's steps


def build_view(r: RequestResult) -> ResponseView:
    text = _THINK.sub("", r.text, count=1) if r.text.lstrip().startswith("<think>") else r.text
    calls = []
    for call in r.tool_calls or []:
        fn = call.get("function") or {}
        raw = fn.get("arguments") or ""
        try:
            args = orjson.loads(raw) if raw.strip() else {}
            err = None
        except orjson.JSONDecodeError as exc:
            args, err = None, str(exc)
        calls.append(ToolCall(str(fn.get("name") or ""), raw, args, err))
    tpot = r.tpot_ns
    return ResponseView(
        text=text, raw_text=r.text, tool_calls=calls, refusal=r.refusal, finish_reason=r.finish_reason,
        input_tokens=r.input_tokens, output_tokens=r.output_tokens, token_source=r.token_source,
        cost_usd=r.cost_usd,
        ttft_s=r.ttft_ns / 1e9 if r.ttft_ns >= 0 else None,
        latency_s=r.latency_ns / 1e9 if r.status == OK and r.latency_ns >= 0 else None,
        tpot_s=tpot / 1e9 if tpot >= 0 else None,
        trajectory=r.trajectory,
    )


# -------------------------------------------------------------------------- extractors

_FENCE = re.compile(r"^```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)\r?\n?```$", re.DOTALL)


def unfence(text: str, tags: tuple[str, ...] = ("", "json")) -> tuple[str, bool]:
    """Strip a code fence only when the whole (trimmed) text is one fenced block."""
    s = text.strip()
    m = _FENCE.match(s)
    if m and m.group(1).lower() in tags and "```" not in m.group(2):
        return m.group(2).strip(), True
    return text, False


class ExtractionError(Exception):
    """An extractor (regex, json_path) found nothing to compare."""


def extract(text: str, spec: dict[str, Any]) -> str:
    """Apply a scorer's extractors in order: strip (default), unfence, regex, json_path."""
    out = text
    if spec.get("strip", True):
        out = out.strip()
    if spec.get("unfence"):
        out, _ = unfence(out, ("", "json", "text", "markdown"))
    pattern = spec.get("regex")
    if pattern:
        matches = list(re.finditer(pattern, out, re.DOTALL | (re.IGNORECASE if spec.get("regex_ignore_case") else 0)))
        if not matches:
            raise ExtractionError(f"regex {pattern!r} found nothing")
        occurrence = spec.get("occurrence", "last")
        m = matches[-1] if occurrence == "last" else matches[0] if occurrence == "first" else matches[int(occurrence)]
        group = spec.get("group")
        if group is None:
            group = 1 if m.re.groups else 0
        out = m.group(group) or ""
    path = spec.get("json_path")
    if path:
        try:
            value = json_path_get(orjson.loads(unfence(out)[0]), path)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ExtractionError(f"json_path {path!r}: {exc}") from None
        out = value if isinstance(value, str) else orjson.dumps(value).decode()
    return out


def json_path_get(obj: Any, path: str) -> Any:
    """A small JSONPath subset: `$.a.b[0].c` (or `a.b.0.c`)."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path.removeprefix("$").lstrip("."))
    for part in parts:
        if part.startswith("["):
            obj = obj[int(part[1:-1])]
        elif isinstance(obj, list) and part.isdigit():
            obj = obj[int(part)]
        else:
            obj = obj[part]
    return obj


# ------------------------------------------------------------------------ normalization

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)


def _strip_punct(s: str) -> str:
    return "".join(ch for ch in s if not unicodedata.category(ch).startswith("P"))


NORMALIZERS = {
    "strip": str.strip,
    "nfkc": lambda s: unicodedata.normalize("NFKC", s),
    "casefold": str.casefold,
    "case": str.casefold,
    "collapse_ws": lambda s: " ".join(s.split()),
    "whitespace": lambda s: " ".join(s.split()),
    "strip_punct": _strip_punct,
    "punctuation": _strip_punct,
    "remove_articles": lambda s: _ARTICLES.sub(" ", s),
    "articles": lambda s: _ARTICLES.sub(" ", s),
}
DEFAULT_NORMALIZE = ("strip", "nfkc", "casefold", "collapse_ws")
SQUAD = ("strip", "nfkc", "casefold", "strip_punct", "remove_articles", "collapse_ws")


def normalize(text: str, steps: tuple[str, ...] | list[str]) -> str:
    for step in steps:
        text = NORMALIZERS[step](text)
    if "remove_articles" in steps or "articles" in steps:
        text = " ".join(text.split())
    return text
