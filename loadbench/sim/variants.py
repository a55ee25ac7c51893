"""How the simulator answers a rendered multiple-choice question, its shuffled or open-ended form, or a
masked-option probe: format sensitivity and memorisation as a profile describes them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import orjson

from ..config.dataset import Item
from ..config.fidelity import PARAPHRASE_PROMPT
from ..config.profiles import Profile
from ..plan.variants import LETTERS, correct_index
from .model import unit_draw

_OPTION = re.compile(r"^([A-Z])\. (.*)$")


@dataclass(frozen=True, slots=True)
class Asked:
    question: str
    options: list[str] | None  # as shown, in the shown order ("[MASK]" for a hidden one)
    kind: str  # mc | json | open | masked


def parse(text: str) -> Asked | None:
    """A prompt rendered from a multiple-choice item (docs/fidelity.md templates), or None."""
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    for i, block in enumerate(blocks):
        lines = block.splitlines()
        if len(lines) >= 2 and all(_OPTION.match(line) for line in lines) and i >= 1:
            options = [_OPTION.match(line).group(2) for line in lines]  # type: ignore[union-attr]
            kind = "masked" if "[MASK]" in options else "json" if '"answer"' in " ".join(blocks[i + 1:]) else "mc"
            start = 1 if kind == "masked" and i >= 2 else 0  # the probe's instruction comes first
            return Asked("\n\n".join(blocks[start:i]), options, kind)
    if len(blocks) >= 2 and blocks[-1].lower().startswith("answer in a few words"):
        return Asked("\n\n".join(blocks[:-1]), None, "open")
    return None


PARAPHRASED = "Put another way: "  # how the simulated paraphraser rewrites a question


def paraphrase_reply(prompt: str) -> str | None:
    """The simulated paraphraser: a request in the shape of loadbench's paraphrase prompt gets the
    question back reworded (a prefix the simulated candidates know to read past)."""
    head = PARAPHRASE_PROMPT.split("{text}")[0]
    if not prompt.startswith(head):
        return None
    return PARAPHRASED + prompt[len(head):].strip()


def find(question: str, by_prompt: dict[str, Item], cache: dict[str, Item | None]) -> Item | None:
    """The item a question belongs to; a close match when noise changed its letters or spaces."""
    question = question.removeprefix(PARAPHRASED)
    item = by_prompt.get(question.strip())
    if item is not None:
        return item
    if question not in cache:
        close = difflib.get_close_matches(question.strip(), list(by_prompt), n=1, cutoff=0.8)
        cache[question] = by_prompt[close[0]] if close else None
    return cache[question]


def answer(item: Item, asked: Asked, profile: Profile, right: bool, key: str) -> str | None:
    """The simulated answer text, or None when the item is not multiple choice."""
    truth = correct_index(item)
    choices = item.choices or []
    if truth is None:
        return None
    if asked.kind == "masked":
        hidden = next((i for i, o in enumerate(asked.options or []) if o == "[MASK]"), None)
        if hidden is not None and hidden < len(choices) and unit_draw(key, "masked") < profile.contamination:
            return choices[hidden]  # memorised
        return "A different option"
    if asked.kind == "open":
        ok = unit_draw(key, "open") < profile.open_ended_factor if right else False
        others = [c for i, c in enumerate(choices) if i != truth] or ["not sure"]
        return choices[truth] if ok else others[int(unit_draw(key, "open-wrong") * len(others))]
    shown = asked.options or []
    if unit_draw(key, "position") < profile.position_memory:
        letter = LETTERS[truth]  # where the answer was in the published test, whatever is there now
    elif right and choices[truth] in shown:
        letter = LETTERS[shown.index(choices[truth])]
    else:
        wrong = [LETTERS[i] for i, o in enumerate(shown) if o != choices[truth]] or ["A"]
        letter = wrong[int(unit_draw(key, "wrong-letter") * len(wrong))]
    return orjson.dumps({"answer": letter}).decode() if asked.kind == "json" else letter
