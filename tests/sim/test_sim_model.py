"""The simulator's pure behaviour: timing model and answers."""

import orjson
import pytest

from loadbench.config.profiles import PROFILES
from loadbench.sim.model import (
    answers_right,
    decode_step_s,
    filler_text,
    prefill_s,
    split_tokens,
    wrong_answer,
)


def test_prefill_grows_with_prompt_and_decode_with_batch():
    p = PROFILES["large-accurate"]
    assert prefill_s(p, 0) == p.prefill_base_s
    assert prefill_s(p, 2000) > prefill_s(p, 100)
    assert decode_step_s(p, 1) == p.decode_per_token_s
    assert decode_step_s(p, p.slots) == pytest.approx(p.decode_per_token_s * (1 + p.decode_slowdown))
    assert decode_step_s(p, 10 * p.slots) == decode_step_s(p, p.slots)  # waiting requests do not slow the batch


def test_profiles_differ_in_speed_capacity_accuracy_and_price():
    small, large = PROFILES["small-fast"], PROFILES["large-accurate"]
    assert small.decode_per_token_s < large.decode_per_token_s
    assert small.slots > large.slots
    assert small.accuracy < large.accuracy
    assert small.output_per_mtok < large.output_per_mtok


def test_accuracy_is_deterministic_per_seed_and_close_to_the_profile():
    p = PROFILES["small-fast"]
    draws = [answers_right(1, p, f"item-{i}") for i in range(4000)]
    assert draws == [answers_right(1, p, f"item-{i}") for i in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(p.accuracy, abs=0.03)
    assert draws != [answers_right(2, p, f"item-{i}") for i in range(4000)]


@pytest.mark.parametrize(
    "target, choices, check",
    [
        ("billing", ["billing", "refund", "complaint"], lambda w: w in ("refund", "complaint")),
        ("42", None, lambda w: w != "42" and w.lstrip("-").isdigit()),
        ("3.5", None, lambda w: w != "3.5" and float(w) != 3.5),
        ("B", None, lambda w: w in "ACD" and len(w) == 1),
        ('{"name": "Ana", "age": 31}', None, lambda w: w != '{"name": "Ana", "age": 31}'),
        ("A long reply that explains the refund policy in detail.", None, lambda w: w != "A long reply that explains the refund policy in detail."),
    ],
)
def test_wrong_answers_have_the_target_shape_but_differ(target, choices, check):
    for k in range(20):
        assert check(wrong_answer(target, choices, f"k{k}"))


def test_wrong_json_shows_the_typical_failure_modes():
    target = orjson.dumps({"order_id": "A-1", "amount": 12.5, "currency": "EUR"}).decode()
    kinds = set()
    for k in range(300):
        w = wrong_answer(target, None, f"k{k}")
        if w.startswith("```"):
            kinds.add("fenced")
        elif w.startswith("Here is"):
            kinds.add("extra_text")
        else:
            try:
                obj = orjson.loads(w)
                kinds.add("wrong_value" if len(obj) == 3 else "missing_key")
            except orjson.JSONDecodeError:
                kinds.add("truncated")
    assert kinds == {"fenced", "extra_text", "wrong_value", "missing_key", "truncated"}


def test_tokens_round_trip_and_filler_length():
    text = "Hello, world! It's 3.5 km."
    assert "".join(split_tokens(text)) == text
    assert len(split_tokens(filler_text(50, "x"))) >= 50
