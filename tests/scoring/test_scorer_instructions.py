import pytest

from tests.helpers import item, run, view


def spec(*instructions, mode="strict"):
    return {"type": "instructions", "instructions": list(instructions), "mode": mode}


@pytest.mark.parametrize(
    "instruction, text, ok",
    [
        ({"id": "length_constraints:number_words", "relation": "at least", "num_words": 5}, "one two three four five", True),
        ({"id": "length_constraints:number_words", "relation": "less than", "num_words": 5}, "one two three four five", False),
        ({"id": "length_constraints:number_sentences", "relation": "exactly", "num_sentences": 2}, "First one. Second one!", True),
        ({"id": "length_constraints:number_paragraphs", "num_paragraphs": 2}, "para one\n\npara two", True),
        ({"id": "length_constraints:number_paragraphs", "num_paragraphs": 2}, "a *** b *** c", False),
        ({"id": "keywords:existence", "keywords": ["refund", "policy"]}, "Our refund policy is simple.", True),
        ({"id": "keywords:existence", "keywords": ["refund"]}, "Our refunds are simple.", False),
        ({"id": "keywords:forbidden_words", "forbidden_words": ["sorry"]}, "We apologise.", True),
        ({"id": "keywords:frequency", "keyword": "data", "frequency": 2, "relation": "at least"}, "data in, data out", True),
        ({"id": "detectable_format:json_format"}, '```json\n{"a": 1}\n```', True),
        ({"id": "detectable_format:json_format"}, "{a: 1}", False),
        ({"id": "detectable_format:number_bullet_lists", "num_bullets": 2}, "* one\n* two", True),
        ({"id": "detectable_format:number_bullet_lists", "num_bullets": 2}, "- one\n- two\n- three", False),
        ({"id": "detectable_format:title"}, "<<My Title>>\nbody", True),
        ({"id": "change_case:english_lowercase"}, "all lower here", True),
        ({"id": "change_case:english_lowercase"}, "Not lower", False),
        ({"id": "change_case:english_capital"}, "ALL CAPS", True),
        ({"id": "punctuation:no_comma"}, "no commas here", True),
        ({"id": "punctuation:no_comma"}, "one, two", False),
        ({"id": "startend:end_checker", "end_phrase": "Any other questions?"}, "Done. Any other questions?", True),
        ({"id": "startend:start_checker", "start_phrase": "Dear customer"}, "Dear customer, hello", True),
        ({"id": "startend:quotation"}, '"quoted"', True),
        ({"id": "detectable_content:postscript", "postscript_marker": "P.S."}, "text\nP.S. more", True),
        ({"id": "detectable_content:number_placeholders", "num_placeholders": 2}, "Hi [name] at [address]", True),
    ],
)
def test_each_check(instruction, text, ok):
    s = run(spec(instruction), item(), view(text))
    assert (s.status == "pass") is ok


def test_instruction_level_value_and_classes():
    s = run(spec({"id": "punctuation:no_comma"}, {"id": "change_case:english_lowercase"}), item(), view("Hello, World"))
    assert s.status == "fail" and s.value == 0.0
    assert s.error_classes == ["instructions.punctuation:no_comma", "instructions.change_case:english_lowercase"]
    s = run(spec({"id": "punctuation:no_comma"}, {"id": "change_case:english_lowercase"}), item(), view("hello, world"))
    assert s.value == 0.5


def test_loose_mode_forgives_a_preamble_and_markdown():
    text = "Sure! Here it is:\n**all lowercase now**"
    assert run(spec({"id": "change_case:english_lowercase"}), item(), view(text)).status == "fail"
    assert run(spec({"id": "change_case:english_lowercase"}, mode="loose"), item(), view(text)).status == "pass"


def test_empty_response_fails_everything_and_ifeval_native_format():
    assert run(spec({"id": "punctuation:no_comma"}), item(), view("")).status == "fail"
    native = {"type": "instructions", "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
              "kwargs": [{}, {"keywords": ["ok"], "unused": None}]}
    assert run(native, item(), view("all ok")).status == "pass"


@pytest.mark.parametrize("bad, message", [
    ({"instructions": [{"id": "nope:nope"}]}, "unknown instruction"),
    ({"instructions": [{"id": "keywords:existence"}]}, "needs keywords"),
    ({}, "give instructions"),
])
def test_bad_specs(bad, message):
    from loadbench.scoring.registry import compile_spec

    with pytest.raises(ValueError, match=message):
        compile_spec({"type": "instructions", **bad})
