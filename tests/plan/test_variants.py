"""Variants keep the schedule: the same intended times, every applicable variant of an item sent
one after another (paired), inapplicable ones skipped and counted, never sent broken (pure)."""

from __future__ import annotations

import pytest

from loadbench.config.dataset import Item
from loadbench.config.fidelity import Fidelity
from loadbench.config.scenario import Scenario
from loadbench.plan.resolve import build_plan
from loadbench.plan.variants import LETTERS, expand, variant

ITEMS = [
    Item.model_validate({"id": "mc1", "input": "Which plan has phone support?", "choices": ["Free", "Team", "Business"],
                         "target": "C"}),
    Item.model_validate({"id": "mc2", "input": "Refund window?", "choices": ["7 days", "30 days"], "target": "30 days"}),
    Item.model_validate({"id": "free", "input": "Say hello.", "target": "hello"}),
    Item.model_validate({"id": "bad", "input": "Pick one", "choices": ["x", "y"], "target": "z"}),  # target not an option
]
ALL = ["original", "choices_shuffled", "open_ended", "json_answer", "noise", "masked_option"]


def scenario(fidelity=None):
    return Scenario.model_validate({"dataset": "d.jsonl", "candidates": [{"name": "a", "sim": "instant"}],
                                    "load": {"arrival": "poisson", "rate_qps": 50, "requests": 60, "seed": 3},
                                    **({"fidelity": fidelity} if fidelity else {})})


def test_applicable_variants_only_and_the_skips_counted():
    out = expand(ITEMS, Fidelity(variants=ALL), seed=1)
    made = {(out.items[i].metadata["base_id"], v) for i, v in enumerate(out.variant_of)}
    assert {v for b, v in made if b == "mc1"} == set(ALL)
    assert {v for b, v in made if b == "mc2"} == set(ALL) - {"masked_option"}  # two options: nothing to hide
    assert {v for b, v in made if b == "free"} == {"original", "noise"}
    assert {v for b, v in made if b == "bad"} == {"original", "noise"}  # no option is the answer: no MC variant
    assert out.skipped == {"original": 0, "choices_shuffled": 2, "open_ended": 2, "json_answer": 2, "noise": 0,
                           "masked_option": 3}
    for item, v in zip(out.items, out.variant_of):
        if v in ("choices_shuffled", "json_answer", "original") and "\nA. " in str(item.input):
            # never sent broken: the target is the letter of the right option as shown
            base = next(i for i in ITEMS if i.id == item.metadata["base_id"])
            right = base.choices[LETTERS.index(base.target)] if len(base.target) == 1 else base.target
            assert item.choices[LETTERS.index(item.target)] == right
    bad_original = next(i for i, v in zip(out.items, out.variant_of) if v == "original" and i.metadata["base_id"] == "bad")
    assert bad_original.input == "Pick one" and bad_original.target == "z"


def test_shuffling_moves_the_options_and_is_seeded():
    a = expand(ITEMS, Fidelity(variants=["choices_shuffled"]), seed=1).items
    b = expand(ITEMS, Fidelity(variants=["choices_shuffled"]), seed=1).items
    assert [i.input for i in a] == [i.input for i in b]
    assert a[0].choices != ITEMS[0].choices and sorted(a[0].choices) == sorted(ITEMS[0].choices)


def test_the_schedule_is_the_same_and_variants_of_an_item_go_together():
    plain = build_plan(scenario(), ITEMS)
    fid = Fidelity(variants=ALL)
    out = expand(ITEMS, fid, seed=3)
    plan = build_plan(scenario({"variants": ALL}), out.items, None, out.base_of)
    assert len(plan.offsets_ns) == len(plain.offsets_ns) == 60
    assert (plan.offsets_ns == plain.offsets_ns).all()  # the same intended send times
    sequence = [plan.order.at(s)[0] for s in range(len(out.items))]
    assert sorted(sequence) == list(range(len(out.items)))  # one pass: every variant of every item once
    bases = [out.base_of[i] for i in sequence]
    runs = [b for i, b in enumerate(bases) if i == 0 or b != bases[i - 1]]
    assert len(runs) == len(set(runs)) == len(ITEMS)  # each item's variants back to back


def test_a_custom_variant_registered_from_python():
    @variant("shout")
    def shout(item, rng, fid):
        return item.model_copy(update={"input": str(item.input).upper()}) if isinstance(item.input, str) else None

    out = expand(ITEMS[:1], Fidelity(variants=["original", "shout"]), seed=1)
    assert out.variant_of == ["original", "shout"] and out.items[1].input.startswith("WHICH PLAN")
    with pytest.raises(ValueError, match="unknown variant"):
        expand(ITEMS, Fidelity(variants=["nope"]), seed=1)
