"""The structured-output scorer: parse-stage classes, schema keywords, field accuracy."""

import pytest

from loadbench.scoring.structured import field_accuracy, parse_json_response
from tests.helpers import item, run, view

SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["id", "total", "currency"],
    "properties": {"id": {"type": "string", "pattern": "^INV-"}, "total": {"type": "number", "minimum": 0},
                   "currency": {"enum": ["EUR", "USD"]}, "email": {"type": "string", "format": "email"}},
}
GOOD = '{"id": "INV-1", "total": 12.5, "currency": "EUR"}'


@pytest.mark.parametrize(
    "text, mode, value, error",
    [
        (GOOD, "strict", {"id": "INV-1", "total": 12.5, "currency": "EUR"}, None),
        ("", "strict", None, "json.empty"),
        ("   ", "unfence", None, "json.empty"),
        ("```json\n" + GOOD + "\n```", "strict", None, "json.fenced"),
        ("```json\n" + GOOD + "\n```", "unfence", {"id": "INV-1", "total": 12.5, "currency": "EUR"}, None),
        ("```\n" + GOOD + "\n```", "unfence", {"id": "INV-1", "total": 12.5, "currency": "EUR"}, None),
        ("```bash\n" + GOOD + "\n```", "unfence", None, "json.extra_text"),  # only json or bare fences are unwrapped
        ("Here you go: " + GOOD, "strict", None, "json.extra_text"),
        (GOOD + " hope this helps", "unfence", None, "json.extra_text"),
        ("Draft {\"a\": 1} final: " + GOOD, "extract", {"id": "INV-1", "total": 12.5, "currency": "EUR"}, None),
        ('{"id": "INV-1", "total": 12.', "strict", None, "json.truncated"),
        ('{"id": "INV-1", "total": NaN}', "strict", None, "json.nonstandard_number"),
        ('{"total": Infinity}', "strict", None, "json.nonstandard_number"),
        ('{"a": 1, "a": 2}', "strict", None, "json.duplicate_key"),
        ("{id: 1}", "strict", None, "json.invalid"),
        ('"just a string"', "strict", "just a string", None),
    ],
)
def test_parse_stages(text, mode, value, error):
    got, err, _msg, _flags = parse_json_response(text, mode)
    assert err == error
    if error is None:
        assert got == value


def test_extract_takes_the_last_json_and_flags_several():
    got, err, _, flags = parse_json_response('first {"v": 1} then {"v": 2}', "extract")
    assert err is None and got == {"v": 2} and flags == {"multiple_json": True}


@pytest.mark.parametrize(
    "text, status, primary, classes",
    [
        (GOOD, "pass", None, []),
        ('{"id": "INV-1", "total": 12.5}', "fail", "schema.required", ["schema.required"]),
        ('{"id": "X-1", "total": 12.5, "currency": "EUR"}', "fail", "schema.pattern", ["schema.pattern"]),
        ('{"id": "INV-1", "total": -1, "currency": "GBP"}', "fail", None, ["schema.minimum", "schema.enum"]),
        ('{"id": "INV-1", "total": "12", "currency": "EUR"}', "fail", "schema.type", ["schema.type"]),
        ('{"id": "INV-1", "total": 1, "currency": "EUR", "x": 1}', "fail", "schema.additionalProperties", ["schema.additionalProperties"]),
        ('{"id": "INV-1", "total": 1, "currency": "EUR", "email": "not-an-email"}', "fail", "schema.format", ["schema.format"]),
    ],
)
def test_schema_keywords(text, status, primary, classes):
    s = run({"type": "json", "schema": SCHEMA}, item(), view(text))
    assert s.status == status
    if primary:
        assert s.error_class == primary
    assert sorted(s.error_classes) == sorted(classes)


def test_schema_from_response_format_and_strict_parse_by_default():
    it = item(request={"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}})
    assert run({"type": "json"}, it, view(GOOD)).status == "pass"
    assert run({"type": "json"}, it, view('{"id": "INV-1"}')).error_class == "schema.required"
    # with response_format the default parse is strict: a fence is an error class of its own
    assert run({"type": "json"}, it, view("```json\n" + GOOD + "\n```")).error_class == "json.fenced"
    # without it, unfence is the default
    assert run({"type": "json"}, item(), view("```json\n" + GOOD + "\n```")).status == "pass"


def test_truncation_and_refusal_are_classified_before_parsing():
    assert run({"type": "json"}, item(), view('{"a": 1', finish_reason="length")).error_class == "json.truncated"
    assert run({"type": "json"}, item(), view("", refusal="no")).error_class == "json.refusal"


def test_invalid_schema_is_a_config_error():
    from loadbench.scoring.registry import compile_spec

    with pytest.raises(ValueError, match="schema is itself invalid"):
        compile_spec({"type": "json", "schema": {"type": "objekt"}})


@pytest.mark.parametrize(
    "expected, got, subset, correct, total, wrong",
    [
        ({"a": 1, "b": "x"}, {"a": 1, "b": "x"}, True, 2, 2, []),
        ({"a": 1, "b": "x"}, {"a": 1, "b": "y", "c": 3}, True, 1, 2, ["$.b"]),
        ({"a": 1}, {"a": 1, "c": 3}, False, 1, 2, ["$.c"]),
        ({"a": None}, {"a": None}, True, 1, 1, []),
        ({"a": None}, {}, True, 0, 1, ["$.a"]),  # a missing key is not null
        ({"n": {"x": 1, "y": 2}}, {"n": {"x": 1, "y": 3}}, True, 1, 2, ["$.n.y"]),
        ({"t": 1.0}, {"t": 1}, True, 1, 1, []),
        ({"f": True}, {"f": 1}, True, 0, 1, ["$.f"]),
    ],
)
def test_field_accuracy(expected, got, subset, correct, total, wrong):
    assert field_accuracy(expected, got, subset=subset, tol=0.0, ignore=set()) == (correct, total, wrong)


def test_expected_object_gives_field_accuracy():
    s = run({"type": "json", "expected": {"id": "INV-1", "total": 12.5, "currency": "USD"}}, item(), view(GOOD))
    assert s.status == "fail" and s.error_class == "json.value_mismatch"
    assert s.value == pytest.approx(2 / 3)
    assert s.metadata["wrong_fields"] == ["$.currency"]
    assert run({"type": "json", "expected": {"total": 12.49}, "number_tol": 0.02}, item(), view(GOOD)).status == "pass"
