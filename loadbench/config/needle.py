"""Long-context items: a fact (the needle) hidden at a chosen depth in filler of a chosen length."""

from __future__ import annotations

import random
from typing import Any

from .tokens import count_sim_tokens

_TEAMS = ["billing", "logistics", "returns", "onboarding", "platform", "payments", "catalog", "field service"]
_THINGS = ["quarterly", "vendor", "pricing", "staffing", "safety", "inventory", "routing", "escalation"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
_CITIES = ["Ghent", "Porto", "Tartu", "Leeds", "Bergen", "Lyon", "Brno", "Cork", "Turku", "Malmo"]
_REASONS = ["sizing problems", "late deliveries", "damaged packaging", "duplicate orders", "changed minds"]
_WORKS = ["plumbing work", "a deep clean", "new shelving", "an electrical inspection", "a coffee machine swap"]
_VAULTS = ["north", "harbour", "cedar", "granite", "meridian", "willow", "quarry", "lantern", "summit", "delta"]

_SENTENCES = [
    "The {team} team moved the {thing} review from {day} to {day2} after the planning call ran long.",
    "In week {n}, the {city} depot processed {m} returns, most of them because of {reason}.",
    "Facilities says the {ordinal} floor kitchen closes on {day} for {work}.",
    "The {city} office reported {m} open tickets on {day}, down from {n} the week before.",
    "A reminder from the {team} lead: expense reports for the {thing} project are due by {day}.",
    "The shuttle between the {city} warehouse and the station now leaves every {n} minutes.",
    "Customer surveys from {city} rated the {thing} process {n} out of ten on average.",
    "The {team} group will pilot the new {thing} checklist with {m} accounts starting {day}.",
]
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth"]


def _sentence(rng: random.Random) -> str:
    day, day2 = rng.sample(_DAYS, 2)
    return rng.choice(_SENTENCES).format(
        team=rng.choice(_TEAMS), thing=rng.choice(_THINGS), day=day, day2=day2, city=rng.choice(_CITIES),
        n=rng.randint(2, 40), m=rng.randint(50, 900), reason=rng.choice(_REASONS), ordinal=rng.choice(_ORDINALS),
        work=rng.choice(_WORKS),
    )


def parse_length(text: str) -> int:
    """'4k' -> 4000, '1500' -> 1500."""
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * 1000 if t.endswith("k") else float(t)
    except ValueError:
        raise ValueError(f"not a length: {text!r} (use e.g. 2000 or 4k)") from None
    if value < 50 or value > 1_000_000:
        raise ValueError(f"length {text!r} is out of range (50 to 1,000,000 tokens)")
    return int(value)


def _label(n_tokens: int) -> str:
    return f"{n_tokens // 1000}k" if n_tokens % 1000 == 0 else str(n_tokens)


def needle_item(n_tokens: int, depth: float, rng: random.Random, index: int) -> dict[str, Any]:
    vault = rng.choice(_VAULTS)
    code = f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(2, 9)}-{rng.randint(1000, 9999)}"
    needle = f"The access code for the {vault} archive is {code}."
    question = f"What is the access code for the {vault} archive? Answer with the code only."
    budget = n_tokens - count_sim_tokens(needle) - count_sim_tokens(question) - 20
    filler: list[str] = []
    used = 0
    while used < budget:
        sentence = _sentence(rng)
        filler.append(sentence)
        used += count_sim_tokens(sentence)
    at = round(depth * len(filler))
    document = " ".join([*filler[:at], needle, *filler[at:]])
    return {
        "id": f"needle-{_label(n_tokens)}-d{round(depth * 100):03d}-{index}",
        "input": [
            {"role": "system", "content": "Answer from the document only. If it does not say, answer 'unknown'."},
            {"role": "user", "content": f"Document:\n{document}\n\nQuestion: {question}"},
        ],
        "target": code,
        "assert": [{"type": "contains", "value": code}],
        "metadata": {"tags": ["needle", f"ctx:{_label(n_tokens)}", f"depth:{depth:g}"],
                     "context_tokens": n_tokens, "depth": depth},
    }


def needle_items(lengths: list[int], depths: list[float], per_cell: int, seed: int) -> list[dict[str, Any]]:
    """Every (length, depth) cell `per_cell` times; deterministic for a seed."""
    rng = random.Random(seed)
    return [needle_item(n, d, rng, k + 1) for n in lengths for d in depths for k in range(per_cell)]
