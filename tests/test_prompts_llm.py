"""Value lists from an LLM: structured requests, validation, seeded retries, every attempt kept."""

import json
import re

import pytest
import torch

from varireal.models.load import load_llm
from varireal.models.tiny import build_llm
from varireal.prompts.build import build_attribute_lists, read_prompts, write_prompts
from varireal.prompts.llm import PromptGenerationError, build_messages, generate_text
from varireal.seeding import item_seed
from varireal.settings.prompts import PromptsParams

CLASSES = ["Abyssinian", "F-16A/B"]
LLM_RECORD = {"model_id": "test/tiny-llama", "revision": "0" * 40}


def params(**overrides) -> PromptsParams:
    settings = dict(
        min_values=2,
        max_values=4,
        max_attempts=3,
        seed=7,
        max_new_tokens=24,
        temperature=1.0,
        top_p=0.95,
        dataset_context={"pets": "photos of pet cats and dogs"},
    )
    return PromptsParams(**{**settings, **overrides})


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """The project's tiny random Llama (byte-level BPE, chat template), saved to disk and
    loaded back by the same loader the stage uses."""
    model_dir = tmp_path_factory.mktemp("prompts") / "llm"
    build_llm(model_dir, seed=0)
    return load_llm(model_dir, "cpu")


class ScriptedLLM:
    """Stands in for generate_text: answers each request from a script and records the calls.

    `script(content, try_number)` gets the request text and how often the same request
    was made before (1 for the first time) and returns the model's text.
    """

    def __init__(self, script):
        self.script = script
        self.calls: list[tuple[str, int]] = []

    def __call__(self, llm, messages, seed, params):
        content = messages[-1]["content"]
        self.calls.append((content, seed))
        return self.script(content, sum(1 for seen, _ in self.calls if seen == content))


COLOURS = ["red", "navy", "olive green", "gold", "teal", "salmon", "plum", "khaki", "tan"]  # CSS4 or XKCD names


def good_answer(content: str, count: int = 3) -> str:
    """A valid answer whose values say which list they belong to; a colour value starts with a
    colour name in parentheses (the part resolved to an RGB, as in the reference's `(ruddy)1.3`)."""
    feasibility = "infeasible" if "INFEASIBLE" in content else "feasible"
    subject = re.search(r"^Attribute: (\w+)", content, re.M).group(1)
    target = re.search(r"^Object class: (.*)\.$", content, re.M)
    tag = f"{feasibility} {subject} {target.group(1) if target else 'any'}"
    colour = (lambda i: f"({COLOURS[i]}) ") if subject == "color" else (lambda i: "")
    values = [{"value": f"{colour(i)}{tag} #{i}", "description": f"looks like {tag} #{i}"} for i in range(count)]
    return "Here you go:\n```json\n" + json.dumps({"values": values}) + "\n```"


def fail_then_succeed(content: str, try_number: int) -> str:
    return "Sure! red, green and blue." if try_number == 1 else good_answer(content)


def test_a_retry_after_an_invalid_answer_is_recorded_and_the_document_validates(tmp_path):
    scripted = ScriptedLLM(fail_then_succeed)
    document = build_attribute_lists("pets", CLASSES, params(), ("model", "tokenizer"), LLM_RECORD, generate=scripted)

    lists_asked = 2 + 2 + 2 * len(CLASSES)
    assert len(document["attempts"]) == len(scripted.calls) == 2 * lists_asked
    first, second = document["attempts"][:2]
    assert first["list"] == second["list"] == "background/feasible"
    assert (first["attempt"], first["valid"], second["attempt"], second["valid"]) == (1, False, 2, True)
    assert first["errors"] == ["no JSON object found: the answer contains no '{'"]
    assert first["raw"] == "Sure! red, green and blue." and second["errors"] == []
    assert first["seed"] == item_seed(7, "pets", "background/feasible", 1) != second["seed"]

    assert document["source"] == "llm" and document["llm"] == LLM_RECORD and document["curated_file"] is None
    assert set(document["lists"]["color"]) == set(CLASSES)
    first_colour = document["lists"]["color"]["F-16A/B"]["infeasible"][0]
    assert (first_colour["value"], first_colour["rgb"], first_colour["rgb_source"]) == (
        "(red) infeasible color F-16A/B #0",
        [255, 0, 0],
        "css4",
    )
    assert [a["list"] for a in document["attempts"] if a["valid"] and a["list"].startswith("color/F-16")] == [
        "color/F-16A/B/feasible",
        "color/F-16A/B/infeasible",
    ]
    write_prompts(tmp_path / "pets.json", document)
    assert read_prompts(tmp_path / "pets.json").lists["texture"].feasible[1].value == "feasible texture any #1"


def test_the_infeasible_request_lists_the_feasible_values_and_an_overlap_is_retried():
    def overlap_first(content: str, try_number: int) -> str:
        if "INFEASIBLE" in content and try_number == 1:
            return good_answer(content.replace("INFEASIBLE", "FEASIBLE"))  # echoes the feasible values
        return good_answer(content)

    scripted = ScriptedLLM(overlap_first)
    document = build_attribute_lists("pets", ["Abyssinian"], params(), object(), LLM_RECORD, generate=scripted)

    infeasible_request = next(content for content, _ in scripted.calls if "INFEASIBLE color" in content)
    assert (
        "Do not use any of these feasible values: (red) feasible color Abyssinian #0; (navy) feasible color Abyssinian #1"
        in infeasible_request
    )
    assert "Object class: Abyssinian." in infeasible_request and "photos of pet cats and dogs" in infeasible_request
    overlaps = [a for a in document["attempts"] if a["list"] == "color/Abyssinian/infeasible"]
    assert [a["valid"] for a in overlaps] == [False, True]
    assert "also appears in the feasible list" in overlaps[0]["errors"][0]


def test_a_colour_answer_no_table_can_resolve_is_retried_with_the_reason():
    def unknown_colours_first(content: str, try_number: int) -> str:
        answer = good_answer(content)
        return answer.replace("(red)", "(ruddy)") if "Attribute: color" in content and try_number == 1 else answer

    document = build_attribute_lists(
        "pets", ["Abyssinian"], params(), object(), {}, generate=ScriptedLLM(unknown_colours_first)
    )
    tries = [a for a in document["attempts"] if a["list"] == "color/Abyssinian/feasible"]
    assert [a["valid"] for a in tries] == [False, True]
    assert tries[0]["errors"] == [
        "colour value '(ruddy) feasible color Abyssinian #0' (name 'ruddy') is neither in the colour table (none given) "
        "nor a CSS4 or XKCD colour name (matplotlib.colors)"
    ]


def test_a_long_answer_is_truncated_to_max_values():
    scripted = ScriptedLLM(lambda content, _: good_answer(content, count=9))
    document = build_attribute_lists("pets", ["Abyssinian"], params(max_values=4), object(), {}, generate=scripted)
    assert len(document["lists"]["background"]["feasible"]) == 4
    assert all(attempt["valid"] for attempt in document["attempts"])


def test_requests_ask_for_json_within_the_limits():
    messages = build_messages(
        dataset="cars",
        class_names=[f"car {i}" for i in range(30)],
        attribute="background",
        feasibility="feasible",
        class_name=None,
        params=params(min_values=18, max_values=50),
    )
    content = messages[0]["content"]
    assert messages[0]["role"] == "user"
    assert "between 18 and 50 different FEASIBLE background values" in content
    assert "car 19, and 10 more" in content and "car 20" not in content
    assert content.endswith('{"values": [{"value": "...", "description": "..."}]}')


def test_the_tiny_llm_never_answers_validly_and_the_error_names_list_and_attempts(tiny_llm):
    with pytest.raises(PromptGenerationError) as raised:
        build_attribute_lists("pets", CLASSES, params(max_attempts=3), tiny_llm, LLM_RECORD)
    message = str(raised.value)
    assert "dataset 'pets'" in message and "'background/feasible' after 3 attempts" in message
    assert "Last validation errors: no JSON object found" in message and "prompts.curated_file" in message

    attempts = raised.value.attempts
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["list"] == "background/feasible" and not a["valid"] and a["errors"] for a in attempts)
    assert len({a["seed"] for a in attempts}) == 3
    assert all(isinstance(a["raw"], str) for a in attempts)


def test_generation_is_seeded_per_item_not_per_process(tiny_llm):
    messages = build_messages(
        dataset="pets",
        class_names=CLASSES,
        attribute="color",
        feasibility="feasible",
        class_name="Abyssinian",
        params=params(),
    )
    first = generate_text(tiny_llm, messages, 11, params())
    torch.rand(1000)  # whatever ran before must not matter
    assert generate_text(tiny_llm, messages, 11, params()) == first
    assert generate_text(tiny_llm, messages, 12, params()) != first


def test_llm_builds_are_byte_identical(tmp_path):
    for name in ("a.json", "b.json"):
        document = build_attribute_lists(
            "pets", CLASSES, params(), object(), LLM_RECORD, generate=ScriptedLLM(fail_then_succeed)
        )
        write_prompts(tmp_path / name, document)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and '"F-16A/B"' in text
