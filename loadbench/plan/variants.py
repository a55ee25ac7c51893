"""Item variants (format sensitivity, contamination probes): each item once per variant that applies (pure)."""

from __future__ import annotations

import hashlib
import importlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config.dataset import Item
from ..config.fidelity import Fidelity

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# A variant is fn(item, rng, fidelity) -> Item | None; None: it does not apply to that item.
VariantFn = Callable[[Item, random.Random, Fidelity], Item | None]
VARIANTS: dict[str, VariantFn] = {}


def variant(name: str) -> Callable[[VariantFn], VariantFn]:
    """Register an item variant: fn(item, rng, fidelity) -> a new Item, or None where it does not apply."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(f"a variant name is letters, digits, '-' and '_', got {name!r}")

    def register(fn: VariantFn) -> VariantFn:
        VARIANTS[name] = fn
        return fn

    return register


@dataclass(slots=True)
class Expanded:
    items: list[Item]
    variant_of: list[str]  # per expanded item: its variant
    base_of: list[int]  # per expanded item: the index of the item it came from
    skipped: dict[str, int] = field(default_factory=dict)  # variant -> items it did not apply to


def _question(item: Item) -> str | None:
    return item.input if isinstance(item.input, str) else None


def correct_index(item: Item) -> int | None:
    """Which option is right: a one-letter target, or a target equal to an option's text."""
    if not item.choices or item.target is None:
        return None
    target = item.target[0] if isinstance(item.target, list) else item.target
    text = str(target).strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(item.choices)]:
        return LETTERS.index(text.upper())
    folded = [c.strip().casefold() for c in item.choices]
    return folded.index(text.casefold()) if text.casefold() in folded else None


def _mc_answer(item: Item) -> int | None:
    """The right option's index of a single-turn multiple-choice item with a text question, else None."""
    if _question(item) is None or item.is_session:
        return None
    return correct_index(item)


def _derived(item: Item, name: str, **update: Any) -> Item:
    """A variant of `item`: its own id (the original keeps the item's), who it came from, the same line."""
    metadata = {**item.metadata, **update.pop("metadata", {}), "variant": name, "base_id": item.id}
    new = item.model_copy(update={"id": item.id if name == "original" else f"{item.id}~{name}", **update, "metadata": metadata})
    new._line = item.line
    return new


def render_options(choices: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def _mc(item: Item, choices: list[str], answer: int, template: str, name: str, **update: Any) -> Item:
    return _derived(item, name, input=template.format(question=_question(item) or "", options=render_options(choices)),
                    choices=choices, target=LETTERS[answer], assert_=[{"type": "choice"}], **update)


@variant("original")
def original(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    answer = _mc_answer(item)
    if answer is None:
        return _derived(item, "original")  # not multiple choice: the item as written
    return _mc(item, list(item.choices or []), answer, fid.mc_template, "original")


@variant("choices_shuffled")
def choices_shuffled(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    answer = _mc_answer(item)
    if answer is None or len(item.choices or []) < 2:
        return None
    order = list(range(len(item.choices or [])))
    while order == sorted(order):  # a permutation that moves something: else the variant tests nothing
        rng.shuffle(order)
    choices = [item.choices[i] for i in order]  # type: ignore[index]
    return _mc(item, choices, order.index(answer), fid.mc_template, "choices_shuffled")


@variant("open_ended")
def open_ended(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    answer = _mc_answer(item)
    if answer is None:
        return None
    return _derived(item, "open_ended", input=fid.open_template.format(question=_question(item)), choices=None,
                    target=(item.choices or [])[answer], assert_=[{"type": "match", "mode": "contains"}])


@variant("json_answer")
def json_answer(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    answer = _mc_answer(item)
    if answer is None:
        return None
    letters = list(LETTERS[: len(item.choices or [])])
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": letters}}, "required": ["answer"],
              "additionalProperties": False}
    request = item.request.model_copy(update={"response_format": {"type": "json_schema",
                                                                  "json_schema": {"name": "answer", "schema": schema}}})
    new = _mc(item, list(item.choices or []), answer, fid.json_template, "json_answer", request=request)
    new.assert_ = [{"type": "json", "expected": {"answer": LETTERS[answer]}, "match": "exact"}]
    return new


def _noisy(text: str, rng: random.Random, fid: Fidelity) -> str:
    words = text.split(" ")
    out = []
    for word in words:
        if len(word) > 3 and word.isalpha() and rng.random() < fid.noise.typo_rate:
            i = rng.randrange(1, len(word) - 2)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        if word.isalpha() and rng.random() < fid.noise.case_rate:
            word = word.swapcase()
        out.append(word)
    joined = ""
    for i, word in enumerate(out):
        joined += word if i == 0 else (("  " if rng.random() < fid.noise.whitespace_rate else " ") + word)
    return joined


@variant("noise")
def noise(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    question = _question(item)
    if question is None or item.is_session:
        return None
    noisy = _noisy(question, rng, fid)
    answer = correct_index(item)
    if answer is not None:
        return _mc(item, list(item.choices or []), answer, fid.mc_template, "noise").model_copy(update={
            "input": fid.mc_template.format(question=noisy, options=render_options(list(item.choices or [])))})
    return _derived(item, "noise", input=noisy)


@variant("masked_option")
def masked_option(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    """The contamination probe: hide one wrong option; a model that supplies it word for word has
    likely seen the test set (the idea behind TS-Guessing)."""
    answer = _mc_answer(item)
    choices = list(item.choices or [])
    if answer is None or len(choices) < 3:
        return None
    wrong = [i for i in range(len(choices)) if i != answer]
    hidden = wrong[rng.randrange(len(wrong))]
    shown = [("[MASK]" if i == hidden else c) for i, c in enumerate(choices)]
    return _derived(item, "masked_option", input=fid.masked_template.format(question=_question(item), options=render_options(shown)),
                    choices=None, target=choices[hidden], assert_=[{"type": "match", "mode": "exact"}],
                    metadata={"hidden_option": hidden})


@variant("paraphrase")
def paraphrase(item: Item, rng: random.Random, fid: Fidelity) -> Item | None:
    """The question in other words: the text comes from fidelity.paraphrase when the run starts
    (once per item, the same for every candidate); until then it holds the source text."""
    question = _question(item)
    if question is None or item.is_session:
        return None
    answer = _mc_answer(item)
    if answer is not None:
        made = _mc(item, list(item.choices or []), answer, fid.mc_template, "paraphrase")
    else:
        made = _derived(item, "paraphrase")
    made.metadata = {**made.metadata, "paraphrase_source": question}
    return made


def with_paraphrase(item: Item, text: str, fid: Fidelity) -> Item:
    """A paraphrase variant's item with the rewritten question in place."""
    if item.choices and "\nA. " in str(item.input):
        new_input = fid.mc_template.format(question=text, options=render_options(list(item.choices)))
    else:
        new_input = text
    made = item.model_copy(update={"input": new_input, "metadata": {**item.metadata, "paraphrased": True}})
    made._line = item.line
    return made


def resolve_variant(name: str) -> VariantFn:
    if name in VARIANTS:
        return VARIANTS[name]
    module, _, attr = name.partition(":")
    if module and attr:
        try:
            fn = getattr(importlib.import_module(module), attr, None)
        except ImportError as exc:
            raise ValueError(f"variant {name!r}: cannot import {module!r}: {exc}") from None
        if callable(fn):
            return fn
    raise ValueError(f"unknown variant {name!r}; built in: {', '.join(VARIANTS)}; or register one with "
                     "@loadbench.variant or name it as module:function")


def _rng(seed: int, variant_name: str, item: Item, index: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{variant_name}:{item.id}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def expand(items: list[Item], fid: Fidelity, seed: int) -> Expanded:
    """Every item once per variant that applies to it, variants of an item side by side."""
    fns = [(name, resolve_variant(name)) for name in fid.variants]
    out = Expanded([], [], [], {name: 0 for name, _ in fns})
    for index, item in enumerate(items):
        for name, fn in fns:
            made = fn(item, _rng(fid.seed if fid.seed is not None else seed, name, item, index), fid)
            if made is None:
                out.skipped[name] += 1
                continue
            if made.metadata.get("variant") != name:  # a custom variant need not label what it made
                made = _derived(item, name, **{k: getattr(made, k) for k in ("input", "target", "choices", "assert_", "request")})
            out.items.append(made)
            out.variant_of.append(name)
            out.base_of.append(index)
    return out


def add_reference(expanded: Expanded, reference: list[Item], fid: Fidelity) -> None:
    """Append a public-style set: each item once, rendered as `original` renders it, under the
    variant name `reference` (counted apart from the domain set, paired with nothing)."""
    first = max(expanded.base_of, default=-1) + 1
    expanded.skipped.setdefault("reference", 0)
    for offset, item in enumerate(reference):
        made = original(item, random.Random(0), fid)
        assert made is not None  # original applies to every item
        made = made.model_copy(update={"id": f"{fid.reference_name}:{item.id}",
                                       "metadata": {**made.metadata, "variant": "reference", "base_id": item.id}})
        made._line = item.line
        expanded.items.append(made)
        expanded.variant_of.append("reference")
        expanded.base_of.append(first + offset)


__all__ = ["LETTERS", "VARIANTS", "Expanded", "add_reference", "correct_index", "expand", "render_options", "resolve_variant", "variant"]
