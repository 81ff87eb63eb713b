"""The four yes/no questions the filter asks about each edit, and their settings (params.yaml `filter`).

(1, 2) is the attribute value present (two phrasings), (3) is it possible for this class, (4) could
this image exist in reality. A feasible edit is expected to get yes, yes, yes, yes; an infeasible
one yes, yes, no, no. Our templates never carry the expected answer; `show_answer` reproduces the
reference's fault of sending it anyway (the question dict itself, `answer` key included).
`questions: reference` asks the reference's own wording instead (read by the prompts stage from
its generator files into the prompts document), two of which name feasibility as it wrote them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from varireal.devices import Device
from varireal.prompts.schema import ReferenceQuestions, ValueForm

QUESTIONS = ("q1", "q2", "q3", "q4")
EXPECTED = {"feasible": ("yes", "yes", "yes", "yes"), "infeasible": ("yes", "yes", "no", "no")}
PLACEHOLDERS = frozenset({"class_name", "value", "attribute", "prefix"})
# Words that would tell the model what to answer (the reference's fault): never in a question.
LEAKING_WORDS = re.compile(r"feasib|expected|should answer|correct answer|the answer is", re.IGNORECASE)


class FilterParams(BaseModel):
    """The `filter` section of params.yaml (one block per profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Device
    processes: int = Field(
        1, ge=1, description="processes per machine (torchrun; varireal.launch); any count writes the same bytes"
    )
    batch_size: int = Field(gt=0, description="candidate edits per forward pass (4 prompts each)")
    threshold: float = Field(ge=0, le=1, description="keep an edit whose score (fraction as expected) reaches this")
    questions: Literal["reference", "ours"] = Field(
        description="reference: the reference's four questions per attribute, from the prompts document; "
        "ours: the four templates below"
    )
    attribute_present: str = Field(description="q1: is the value present; {value} and {attribute} are filled in")
    attribute_present_rephrased: str = Field(description="q2: the same, phrased differently")
    possible_for_class: str = Field(description="q3: could a {class_name} have this {attribute} value")
    exists_in_reality: str = Field(description="q4: could this image exist in reality")
    answer_instruction: str = Field(description="appended to every question, e.g. 'Answer yes or no.'")
    show_answer: bool = Field(
        description="send the reference's question dict, expected answer included, instead of question + instruction"
    )
    answer_from: Literal["generated_text", "yes_no_probability"] = Field(
        description="generated_text: parse yes/no from a greedy reply (the reference); yes_no_probability: p(yes) vs p(no)"
    )
    max_new_tokens: int = Field(gt=0, description="the reply's length at most (generated_text only)")
    accept_unfiltered_after: int | None = Field(
        ge=0,
        description="after this many cycles of a real image accept every further candidate (the reference: 2); "
        "null: a slot without a passing candidate is rejected",
    )

    @field_validator("attribute_present", "attribute_present_rephrased", "possible_for_class", "exists_in_reality")
    @classmethod
    def _question_template(cls, template: str) -> str:
        check_template(template)
        return template

    @field_validator("answer_instruction")
    @classmethod
    def _instruction(cls, text: str) -> str:
        if not re.search(r"\byes\b", text, re.IGNORECASE) or not re.search(r"\bno\b", text, re.IGNORECASE):
            raise ValueError(
                f"answer_instruction={text!r}: must ask for 'yes' or 'no' (the answer is read from those tokens)"
            )
        if LEAKING_WORDS.search(text):
            raise ValueError(f"answer_instruction={text!r}: must not hint at the expected answer")
        return text

    def templates(self) -> tuple[str, str, str, str]:
        return (
            self.attribute_present,
            self.attribute_present_rephrased,
            self.possible_for_class,
            self.exists_in_reality,
        )


def check_template(template: str, guarded: bool = True) -> None:
    """A question template may use only the known placeholders and (guarded: ours) must not hint at the answer."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"question template {template!r}: not a valid format string ({err})") from err
    unknown = names - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"question template {template!r}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}"
        )
    if guarded and LEAKING_WORDS.search(template):
        raise ValueError(
            f"question template {template!r}: mentions feasibility or the expected answer "
            f"(matches {LEAKING_WORDS.pattern!r}); ask the question neutrally"
        )
    if not template.strip().endswith("?"):
        raise ValueError(f"question template {template!r}: a yes/no question ends with '?'")


# --- questions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Questions:
    """The four templates asked of an edit, what fills {value}, and whether the texts are ours (guarded)."""

    templates: tuple[str, str, str, str]
    value_form: ValueForm = "value"
    # ours: no template or filled question may hint at the answer. The reference's texts are shown as
    # it wrote them ("feasible", "feasibile"), so only what fills them (value, class) is checked.
    guarded: bool = True
    source: str = "filter params"


def question_set(
    settings: FilterParams, attribute: str, reference: Mapping[str, ReferenceQuestions] | None, where: str
) -> Questions:
    """The questions an edit of `attribute` is asked under filter.<profile>.questions.

    reference: the prompts document's `questions` (None when it has none); where: that document's path.
    """
    if settings.questions == "ours":
        return Questions(settings.templates())
    if reference is None or attribute not in reference:
        raise ValueError(
            f"filter.questions is 'reference' but {where} has no reference questions for {attribute!r}; give "
            "prompts.<profile>.reference.files back_gen, color_gen and texture_gen (the reference's generator files) "
            "and rerun the prompts stage, or set filter.<profile>.questions: ours"
        )
    asked = reference[attribute]
    for template in asked.templates:
        check_template(template, guarded=False)
    return Questions(asked.templates, asked.value_form, guarded=False, source=asked.source)


@dataclass(frozen=True)
class Candidate:
    """One edited image to judge, with what its questions are filled with."""

    edit_id: str
    shard: Path  # the edit shard holding its image, at offset / size
    offset: int
    size: int
    class_name: str
    attribute: str
    feasibility: str
    value: str
    description: str = ""  # the value list entry's text after "value: " (the reference's texture questions show it)


def value_text(candidate: Candidate, form: ValueForm) -> str:
    """What {value} is filled with (schema.ValueForm): the entry "value: description" whole, up to its first ':', or the value."""
    whole = f"{candidate.value}: {candidate.description}" if candidate.description else candidate.value
    if form == "value_description":
        return whole
    return whole.split(":")[0] if form == "before_colon" else candidate.value


def questions_for(candidate: Candidate, questions: Questions, prefix: str) -> list[str]:
    """The four questions with the edit's class, value and attribute filled in (single-spaced)."""
    fields = {
        "class_name": candidate.class_name,
        "value": value_text(candidate, questions.value_form),
        "attribute": candidate.attribute,
        "prefix": prefix,
    }
    texts = [" ".join(template.format(**fields).split()) for template in questions.templates]
    # A value or class name could still carry the word in: the question would give the answer away.
    checked = texts if questions.guarded else [" ".join(fields.values())]
    for question in checked:
        if LEAKING_WORDS.search(question):
            raise ValueError(
                f"edit {candidate.edit_id}: {'question' if questions.guarded else 'value and class'} {question!r} names "
                "the feasibility or the expected answer; "
                "change the value list or the question template"
            )
    return texts


def expected_answers(feasibility: str) -> tuple[str, str, str, str]:
    if feasibility not in EXPECTED:
        raise ValueError(f"feasibility={feasibility!r}: the filter judges 'feasible' or 'infeasible' edits")
    return EXPECTED[feasibility]


def filter_prompt(processor: Any, question: str, expected: str, settings: FilterParams) -> str:
    """The prompt for one question: the question and the instruction or (show_answer) the reference's
    question dict as Python prints it, whose `answer` gives the expected reply away (the reference
    passed the dict itself, not the prompt it had formatted: vlm_filter/vqa_models.py:76, vlm/llava.py:44)."""
    if settings.show_answer:
        return chat_prompt(processor, str({"question": question, "choices": ["yes", "no"], "answer": expected}), None)
    return chat_prompt(processor, question, settings.answer_instruction)


def chat_prompt(processor: Any, question: str, instruction: str | None) -> str:
    """One image, the question and the instruction (if any), in the model's own chat template, ready for the answer."""
    text = question if instruction is None else f"{question} {instruction}"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)
