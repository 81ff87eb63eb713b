"""Value-list validation, JSON extraction from model answers, and the `prompts:` params."""

import json

import pytest
from pydantic import ValidationError

from varireal.prompts.validate import check_answer, check_value_list, extract_json_object
from varireal.settings.prompts import PromptsParams


def entries(*values: str) -> list[dict]:
    return [{"value": value, "description": f"what {value} looks like"} for value in values]


def check(items, *, min_values=2, max_values=4, forbidden=(), truncate=True):
    return check_value_list(items, min_values=min_values, max_values=max_values, forbidden=forbidden, truncate=truncate)


def test_a_good_list_is_kept_stripped_and_in_order():
    result = check([{"value": "  deep sea ", "description": " dark water "}, *entries("space station")])
    assert result.valid
    assert result.values == [
        {"value": "deep sea", "description": "dark water"},
        {"value": "space station", "description": "what space station looks like"},
    ]


def test_too_few_entries_is_an_error_naming_min_values():
    result = check(entries("only one"))
    assert not result.valid
    assert "fewer than min_values=2" in result.errors[0]


def test_too_many_entries_are_truncated_for_an_llm_answer():
    result = check(entries("a", "b", "c", "d", "e", "f"), max_values=4)
    assert result.valid
    assert [entry["value"] for entry in result.values] == ["a", "b", "c", "d"]


def test_entries_past_max_values_are_not_checked_once_truncated():
    result = check([*entries("a", "b", "c", "d"), {"value": "", "description": ""}], max_values=4)
    assert result.valid


def test_too_many_entries_is_an_error_without_truncation():
    result = check(entries("a", "b", "c", "d", "e"), max_values=4, truncate=False)
    assert result.errors == ["has 5 entries, more than max_values=4"]


@pytest.mark.parametrize("twin", ["Deep Sea", "deep  sea", " DEEP\tSEA "])
def test_duplicates_ignore_case_and_whitespace(twin):
    result = check(entries("deep sea", "moon", twin))
    assert not result.valid
    assert any("entry 3" in error and "duplicates entry 1" in error for error in result.errors)


def test_a_value_in_the_feasible_list_is_rejected_from_the_infeasible_one():
    result = check(entries("moon surface", "Backyard "), forbidden=["backyard", "kitchen"])
    assert result.errors == ["entry 2: value 'Backyard' also appears in the feasible list"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"value": "", "description": "x"}, "value is an empty string"),
        ({"value": "x", "description": "   "}, "description is an empty string"),
        ({"value": "x"}, "missing 'description'"),
        ({"value": False, "description": "x"}, "value must be a string, got bool False"),
        ({"value": "x", "description": "y", "reason": "z"}, "unknown key(s) reason"),
        ("just text", "expected an object with keys value and description"),
    ],
)
def test_bad_entries_are_named_by_position(entry, expected):
    result = check([*entries("fine"), entry])
    assert not result.valid
    assert any(error.startswith("entry 2: ") and expected in error for error in result.errors), result.errors


def test_a_non_list_is_rejected():
    assert not check({"value": "x", "description": "y"}).valid


ANSWER = {"values": entries("red", "green")}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(ANSWER),
        "Sure! Here is the list:\n```json\n" + json.dumps(ANSWER, indent=2) + "\n```\nEnjoy.",
        "Note {not json} first, then " + json.dumps(ANSWER) + ' and {"other": 1}',
        "```\n" + json.dumps(ANSWER) + "\n```",
    ],
)
def test_the_first_json_object_is_found_in_messy_text(text):
    assert extract_json_object(text) == ANSWER


def test_an_answer_cut_off_mid_list_does_not_yield_its_first_entry():
    cut = json.dumps(ANSWER)[:-12]
    with pytest.raises(ValueError, match="no JSON object found: .*not valid JSON"):
        extract_json_object(cut)


def test_text_without_braces_has_no_object():
    with pytest.raises(ValueError, match="contains no '{'"):
        extract_json_object("red, green, blue")


def test_check_answer_requires_the_values_key_only():
    result = check_answer('{"colors": []}', min_values=1, max_values=3)
    assert result.errors == ['expected a JSON object with the single key "values", got keys: colors']
    assert check_answer("here: " + json.dumps(ANSWER), min_values=1, max_values=3).valid


PARAMS = dict(min_values=2, max_values=5, max_attempts=3, seed=0, max_new_tokens=64, temperature=0.7, top_p=0.9)


def test_params_accept_a_minimal_section():
    params = PromptsParams.model_validate(PARAMS)
    assert params.curated_file is None and params.dataset_context == {}


def test_an_unknown_key_error_names_it_its_value_and_the_allowed_keys():
    with pytest.raises(ValidationError) as raised:
        PromptsParams.model_validate({**PARAMS, "max_value": 9})
    message = str(raised.value)
    assert (
        "max_value=9" in message
        and "allowed keys are source, curated_file, reference, color_table, value_draw, min_values, max_values"
        in message
    )


def test_min_values_above_max_values_is_refused_with_both_values():
    with pytest.raises(ValidationError, match=r"min_values=6 is larger than prompts.max_values=5"):
        PromptsParams.model_validate({**PARAMS, "min_values": 6})


@pytest.mark.parametrize(("key", "value"), [("temperature", 0), ("top_p", 1.5), ("max_attempts", 0)])
def test_out_of_range_values_are_named_with_the_bound(key, value):
    with pytest.raises(ValidationError) as raised:
        PromptsParams.model_validate({**PARAMS, key: value})
    message = str(raised.value)
    assert key in message and f"input_value={value}" in message and "Input should be" in message
