"""The four yes/no questions the filter asks about each edit (their settings: varireal.settings.filter).

(1, 2) is the attribute value present (two phrasings), (3) is it possible for this class, (4) could
this image exist in reality. A feasible edit is expected to get yes, yes, yes, yes; an infeasible
one yes, yes, no, no. Our templates never carry the expected answer; `show_answer` reproduces the
reference's fault of sending it anyway (the question dict itself, `answer` key included).
`questions: reference` asks the reference's own wording instead (read by the prompts stage from
its generator files into the prompts document), two of which name feasibility as it wrote them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from varireal.prompts.schema import ReferenceQuestions
from varireal.settings.filter import LEAKING_WORDS, FilterParams, check_template
from varireal.settings.prompts import ValueForm

QUESTIONS = ("q1", "q2", "q3", "q4")
EXPECTED = {"feasible": ("yes", "yes", "yes", "yes"), "infeasible": ("yes", "yes", "no", "no")}


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
    # our class name -> how the questions name it (filter.<profile>.class_names: reference); others as they are
    class_names: Mapping[str, str] = field(default_factory=dict)


def question_set(
    settings: FilterParams,
    attribute: str,
    reference: Mapping[str, ReferenceQuestions] | None,
    where: str,
    class_names: Mapping[str, str] | None = None,
) -> Questions:
    """The questions an edit of `attribute` is asked under filter.<profile>.questions and .class_names.

    reference, class_names: the prompts document's `questions` and `class_names` (None when it has none);
    where: that document's path.
    """
    names = _asked_class_names(settings, class_names, where)
    if settings.questions == "ours":
        return Questions(settings.templates(), class_names=names)
    if reference is None or attribute not in reference:
        raise ValueError(
            f"filter.questions is 'reference' but {where} has no reference questions for {attribute!r}; give "
            "prompts.<profile>.reference.files back_gen, color_gen and texture_gen (the reference's generator files) "
            "and rerun the prompts stage, or set filter.<profile>.questions: ours"
        )
    asked = reference[attribute]
    for template in asked.templates:
        check_template(template, guarded=False)
    return Questions(asked.templates, asked.value_form, guarded=False, source=asked.source, class_names=names)


def _asked_class_names(settings: FilterParams, class_names: Mapping[str, str] | None, where: str) -> dict[str, str]:
    if settings.class_names == "ours":
        return {}
    if class_names is None:
        raise ValueError(
            f"filter.class_names is 'reference' but {where} has no reference class names; give "
            "prompts.<profile>.reference.files.class_names (its Finetune/classify/util_data.py) and a "
            "prompts.<profile>.reference.datasets key for the dataset, and rerun the prompts stage, or set "
            "filter.<profile>.class_names: ours"
        )
    return dict(class_names)


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
        "class_name": questions.class_names.get(candidate.class_name, candidate.class_name),
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
