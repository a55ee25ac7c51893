"""The simulated deployment's behaviour as pure functions: profiles, timing and answers."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ..config.profiles import Profile

_PIECES = re.compile(r"\s*(?:\w+|[^\w\s])")


PREFIX_BLOCK = 32


def split_tokens(text: str) -> list[str]:
    """The simulator's tokens: words and punctuation, each with its leading whitespace."""
    pieces = _PIECES.findall(text)
    return pieces if pieces else ([text] if text else [])


def prefill_s(p: Profile, prompt_tokens: int) -> float:
    return p.prefill_base_s + p.prefill_per_token_s * prompt_tokens


def decode_step_s(p: Profile, active: int) -> float:
    share = (max(active, 1) - 1) / max(p.slots - 1, 1)
    return p.decode_per_token_s * (1.0 + p.decode_slowdown * min(share, 1.0))


def unit_draw(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from the given parts."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def answers_right(seed: int, profile: Profile, item_id: str, prompt_tokens: int = 0) -> bool:
    """Deterministic per (seed, profile, item); long prompts lower the odds (lost in the middle)."""
    accuracy = profile.accuracy * (1.0 - profile.long_context_decay * min(1.0, prompt_tokens / 16_000))
    return unit_draw(seed, profile.name, item_id, "right") < accuracy


_FILLER = ["The", "request", "was", "reviewed", "against", "the", "account", "history", "and", "the", "relevant", "policy.", "Based", "on", "the", "details", "provided,", "the", "most", "likely", "explanation", "is", "a", "configuration", "change", "made", "earlier", "this", "week,", "and", "the", "recommended", "next", "step", "is", "to", "confirm", "the", "settings", "before", "escalating", "to", "the", "on-call", "engineer."]


def filler_text(n_tokens: int, key: str) -> str:
    words = []
    start = int(unit_draw(key, "filler") * len(_FILLER))
    while sum(len(split_tokens(w)) for w in words) < n_tokens:
        words.append(_FILLER[(start + len(words)) % len(_FILLER)])
    return " ".join(words)


def wrong_answer(target: str, choices: list[str] | None, key: str) -> str:
    """A plausible wrong answer of the same shape as the target."""
    r = unit_draw(key, "wrong")
    if choices:
        others = [c for c in choices if c.strip().lower() != target.strip().lower()]
        if others:
            return others[int(r * len(others))]
    stripped = target.strip()
    number = _as_number(stripped)
    if number is not None:
        delta = 1 + int(r * 9)
        wrong = number + delta if r < 0.5 else number - delta
        return str(int(wrong)) if float(wrong).is_integer() and "." not in stripped else f"{wrong:g}"
    if stripped.startswith("{"):
        return _wrong_json(stripped, r)
    if len(stripped) == 1 and stripped.isalpha():
        return chr((ord(stripped.upper()) - ord("A") + 1 + int(r * 3)) % 4 + ord("A"))
    words = stripped.split()
    if len(words) > 3:
        return " ".join(words[: max(1, len(words) // 2)]) + " (details unclear)"
    return "I am not sure; please contact support for more details."


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _wrong_json(target: str, r: float) -> str:
    """Typical structured-output failures: a wrong field, a fence, or a cut-off body."""
    try:
        obj = orjson.loads(target)
    except orjson.JSONDecodeError:
        return target[: len(target) // 2]
    if r < 0.35 and isinstance(obj, dict) and obj:
        key = sorted(obj)[int(r * 1000) % len(obj)]
        obj = {**obj, key: _perturb(obj[key])}
        return orjson.dumps(obj).decode()
    if r < 0.55:
        return "```json\n" + target + "\n```"
    if r < 0.75:
        return target[: max(1, int(len(target) * 0.6))]
    if r < 0.9 and isinstance(obj, dict) and obj:
        obj = dict(obj)
        obj.pop(sorted(obj)[0])
        return orjson.dumps(obj).decode()
    return "Here is the extracted data: " + target


def _perturb(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value.upper() if value.lower() == value else value.lower() + "x"
    if isinstance(value, list):
        return value[:-1]
    return None


_SECTION = re.compile(r"^\[(Task|Question|Reference answer|Expert answer|Response|Submission|Additional criterion|Rubric)\]:[ ]?(.*?)(?=^\*\*\*$)",
                      re.MULTILINE | re.DOTALL)


def judge_reply(prompt: str, profile: Profile, seed: int) -> str | None:
    """If `prompt` is a loadbench judge prompt, grade it like a careful (but not perfect)
    judge: the response is correct when it contains the reference answer after
    normalization; the profile's accuracy sets how often the judge gets that wrong."""
    if "[BEGIN DATA]" not in prompt or "GRADE" not in prompt:
        return None
    sections = {m.group(1): m.group(2).strip() for m in _SECTION.finditer(prompt)}
    reference = sections.get("Reference answer") or sections.get("Expert answer") or ""
    response = sections.get("Response") or sections.get("Submission") or ""
    norm = lambda s: " ".join(re.sub(r"[^\w\s]", " ", s.casefold()).split())
    options = [norm(x) for x in reference.split("; or ")] if reference and reference != "(none given)" else []
    correct = bool(response) and response != "(empty response)" and (not options or any(o and o in norm(response) for o in options))
    if unit_draw(seed, profile.name, prompt, "judge") >= profile.accuracy:
        correct = not correct
    fact = "Expert answer" in sections
    if fact:
        letter = "C" if correct else "D"
        reason = "The submission states the same facts as the expert answer." if correct else "The submission contradicts the expert answer."
    else:
        letter = "C" if correct else "I"
        reason = "The response agrees with the reference answer." if correct else "The response does not match the reference answer."
    return f"{reason}\nGRADE: {letter}"


