"""Verifiable instructions in IFEval's format: a subset of its checks, written for loadbench."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config.dataset import Item
from .basic import SpecBase
from .catalog import scorer
from .scores import ResponseView, Score, failed, passed


def _compare(count: int, relation: str, n: int) -> bool:
    if relation in ("less than", "<"):
        return count < n
    if relation in ("at most", "<="):
        return count <= n
    if relation in ("at least", ">="):
        return count >= n
    if relation in ("exactly", "=="):
        return count == n
    raise ValueError(f"unknown relation {relation!r}")


def _words(text: str) -> list[str]:
    return re.findall(r"\b[\w'-]+\b", text)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return [p for p in parts if re.search(r"\w", p)]


def _paragraphs(text: str) -> list[str]:
    if "***" in text:
        parts = re.split(r"\s*\*\*\*\s*", text)
    else:
        parts = re.split(r"\n\s*\n", text)
    return [p for p in parts if p.strip()]


def _check_words(text: str, kw: dict[str, Any]) -> bool:
    return _compare(len(_words(text)), kw.get("relation", "at least"), int(kw["num_words"]))


def _check_sentences(text: str, kw: dict[str, Any]) -> bool:
    return _compare(len(_sentences(text)), kw.get("relation", "at least"), int(kw["num_sentences"]))


def _check_paragraphs(text: str, kw: dict[str, Any]) -> bool:
    return len(_paragraphs(text)) == int(kw["num_paragraphs"])


def _check_keywords(text: str, kw: dict[str, Any]) -> bool:
    low = text.casefold()
    return all(re.search(r"\b" + re.escape(k.casefold()) + r"\b", low) for k in kw["keywords"])


def _check_forbidden(text: str, kw: dict[str, Any]) -> bool:
    low = text.casefold()
    return not any(re.search(r"\b" + re.escape(k.casefold()) + r"\b", low) for k in kw["forbidden_words"])


def _check_frequency(text: str, kw: dict[str, Any]) -> bool:
    n = len(re.findall(r"\b" + re.escape(kw["keyword"].casefold()) + r"\b", text.casefold()))
    return _compare(n, kw.get("relation", "at least"), int(kw["frequency"]))


def _check_json(text: str, kw: dict[str, Any]) -> bool:
    s = text.strip()
    s = re.sub(r"^```(?:json)?\s*|\s*```$", "", s, flags=re.IGNORECASE)
    try:
        json.loads(s)
        return True
    except ValueError:
        return False


def _check_bullets(text: str, kw: dict[str, Any]) -> bool:
    bullets = re.findall(r"^\s*[*-]\s+\S", text, flags=re.MULTILINE)
    return len(bullets) == int(kw["num_bullets"])


def _check_title(text: str, kw: dict[str, Any]) -> bool:
    return re.search(r"<<[^\n>]+>>", text) is not None


def _check_lowercase(text: str, kw: dict[str, Any]) -> bool:
    return text == text.lower()


def _check_uppercase(text: str, kw: dict[str, Any]) -> bool:
    return text == text.upper()


def _check_no_comma(text: str, kw: dict[str, Any]) -> bool:
    return "," not in text


def _check_end(text: str, kw: dict[str, Any]) -> bool:
    return text.strip().casefold().endswith(kw["end_phrase"].strip().casefold())


def _check_start(text: str, kw: dict[str, Any]) -> bool:
    return text.strip().casefold().startswith(kw["start_phrase"].strip().casefold())


def _check_quotation(text: str, kw: dict[str, Any]) -> bool:
    s = text.strip()
    return len(s) > 1 and s[0] == '"' and s[-1] == '"'


def _check_postscript(text: str, kw: dict[str, Any]) -> bool:
    marker = kw.get("postscript_marker", "P.S.")
    return re.search(r"^\s*" + re.escape(marker), text, flags=re.MULTILINE | re.IGNORECASE) is not None


def _check_placeholders(text: str, kw: dict[str, Any]) -> bool:
    return len(re.findall(r"\[[^\]]+\]", text)) >= int(kw["num_placeholders"])


CHECKS: dict[str, tuple[Callable[[str, dict[str, Any]], bool], tuple[str, ...]]] = {
    "length_constraints:number_words": (_check_words, ("num_words",)),
    "length_constraints:number_sentences": (_check_sentences, ("num_sentences",)),
    "length_constraints:number_paragraphs": (_check_paragraphs, ("num_paragraphs",)),
    "keywords:existence": (_check_keywords, ("keywords",)),
    "keywords:forbidden_words": (_check_forbidden, ("forbidden_words",)),
    "keywords:frequency": (_check_frequency, ("keyword", "frequency")),
    "detectable_format:json_format": (_check_json, ()),
    "detectable_format:number_bullet_lists": (_check_bullets, ("num_bullets",)),
    "detectable_format:title": (_check_title, ()),
    "change_case:english_lowercase": (_check_lowercase, ()),
    "change_case:english_capital": (_check_uppercase, ()),
    "punctuation:no_comma": (_check_no_comma, ()),
    "startend:end_checker": (_check_end, ("end_phrase",)),
    "startend:start_checker": (_check_start, ("start_phrase",)),
    "startend:quotation": (_check_quotation, ()),
    "detectable_content:postscript": (_check_postscript, ()),
    "detectable_content:number_placeholders": (_check_placeholders, ("num_placeholders",)),
}


class InstructionsSpec(SpecBase):
    type: Literal["instructions"] = "instructions"
    instructions: list[dict[str, Any]] = Field(default_factory=list)
    instruction_id_list: list[str] | None = None
    kwargs: list[dict[str, Any] | None] | None = None
    mode: Literal["strict", "loose"] = "strict"

    @model_validator(mode="after")
    def _resolve(self) -> InstructionsSpec:
        if self.instruction_id_list is not None:
            kwargs = self.kwargs or [{} for _ in self.instruction_id_list]
            if len(kwargs) != len(self.instruction_id_list):
                raise ValueError("kwargs must have one entry per instruction_id_list entry")
            self.instructions = [
                {"id": iid, **{k: v for k, v in (kw or {}).items() if v is not None}}
                for iid, kw in zip(self.instruction_id_list, kwargs)
            ]
        if not self.instructions:
            raise ValueError("give instructions (or IFEval's instruction_id_list and kwargs)")
        for ins in self.instructions:
            iid = ins.get("id")
            if iid not in CHECKS:
                raise ValueError(f"unknown instruction {iid!r}; known: {', '.join(CHECKS)}")
            missing = [k for k in CHECKS[iid][1] if k not in ins]
            if missing:
                raise ValueError(f"instruction {iid} needs {', '.join(missing)}")
        return self


def loose_variants(text: str) -> list[str]:
    """IFEval's loose mode: also try without the first/last line and without markdown emphasis."""
    lines = text.split("\n")
    variants = [text, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [v for base in variants for v in (base, base.replace("*", ""))]


@scorer("instructions", params=InstructionsSpec, builtin=True)
def score_instructions(item: Item, response: ResponseView, *, name: str, extract: dict[str, Any],
                       instructions: list[dict[str, Any]], instruction_id_list: list[str] | None,
                       kwargs: list[dict[str, Any] | None] | None, mode: str) -> Score:
    text = response.text
    variants = loose_variants(text) if mode == "loose" else [text]
    failed_ids = []
    for ins in instructions:
        fn, _ = CHECKS[ins["id"]]
        ok = bool(text.strip()) and any(v.strip() and fn(v, ins) for v in variants)
        if not ok:
            failed_ids.append(ins["id"])
    followed = len(instructions) - len(failed_ids)
    value = followed / len(instructions)
    meta = {"followed": followed, "total": len(instructions), "mode": mode}
    if failed_ids:
        classes = [f"instructions.{i}" for i in failed_ids]
        return failed("instructions", name, classes[0], None, value=value, classes=classes, metadata=meta)
    return passed("instructions", name, value=1.0, metadata=meta)
