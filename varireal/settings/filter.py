"""The `filter:` section of params.yaml: the judge's questions, how its answers are read, and the rule.

Our question templates never carry the expected answer; `show_answer` reproduces the reference's
fault of sending it anyway, and `accept_unfiltered_after` its acceptance of everything after two
cycles (varireal.judge).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from varireal.schema import template_placeholders
from varireal.settings.base import PerProfile, Strict, Study
from varireal.vocabulary import Device

PLACEHOLDERS = frozenset({"class_name", "value", "attribute", "prefix"})
# Words that would tell the model what to answer (the reference's fault): never in a question.
LEAKING_WORDS = re.compile(r"feasib|expected|should answer|correct answer|the answer is", re.IGNORECASE)


class FilterParams(Strict):
    """`filter.<profile>`: one judge's settings."""

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
    class_names: Literal["reference", "ours"] = Field(
        "ours",
        description="how a question names the class: reference (its spelling, 'American Bulldog', from the prompts "
        "document) or ours (the dataset's own, 'american bulldog')",
    )
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
    template_placeholders(template, sorted(PLACEHOLDERS), "question template")
    if guarded and LEAKING_WORDS.search(template):
        raise ValueError(
            f"question template {template!r}: mentions feasibility or the expected answer "
            f"(matches {LEAKING_WORDS.pattern!r}); ask the question neutrally"
        )
    if not template.strip().endswith("?"):
        raise ValueError(f"question template {template!r}: a yes/no question ends with '?'")


class FilterStage(Study):
    """What the filter stage reads."""

    filter: PerProfile[FilterParams]
