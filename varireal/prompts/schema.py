"""The document the prompts stage writes (prompts/<dataset>.json); its settings: varireal.settings.prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from varireal.settings.prompts import ValueDraw, ValueForm
from varireal.vocabulary import Attribute

FORMAT_VERSION = 1


class AttributeValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str  # inserted into edit prompts, e.g. "suburban backyard" or the reference's "(ruddy)1.3"
    description: str  # one sentence of what it looks like ("" for the reference's colours, which have none)
    rgb: tuple[int, int, int] | None = None  # colour values only: the tint, resolved by the prompts stage
    rgb_source: Literal["reference", "file", "css4", "xkcd"] | None = (
        None  # the table that named it (file: color_table)
    )


# One list for the dataset, or lists per group: a class name, or a category of `categories`
ValueList = list[AttributeValue] | dict[str, list[AttributeValue]]


class FeasibilityLists(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feasible: ValueList
    infeasible: ValueList


# Per attribute, its lists as its module's `lists` scope says (varireal.attributes.kind.ListScope): one pair
# for the dataset (each a list, or lists per group: the reference's texture lists per class for pets, per
# category for aircraft), or one pair per class, keyed by the real class name (colour).
AttributeLists = dict[str, FeasibilityLists | dict[str, FeasibilityLists]]


def per_class(lists: FeasibilityLists | dict[str, FeasibilityLists]) -> bool:
    """Whether an attribute's lists are one pair per class (rather than one for the dataset)."""
    return not isinstance(lists, FeasibilityLists)


class Attempt(BaseModel):
    """One LLM answer, kept whether it passed validation or not."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    list_key: str = Field(alias="list")  # "background/feasible", "color/<class>/infeasible"
    attempt: int  # 1-based
    seed: int
    valid: bool
    errors: list[str]
    raw: str


class ReferenceQuestions(BaseModel):
    """One attribute's four filter questions as the reference worded them, read from its generator file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # with {value}, {prefix} and {class_name} in place of the f-strings' names (the reference's text otherwise)
    templates: tuple[str, str, str, str]
    value_form: ValueForm  # what {value} is filled with
    source: str  # path:first-last line of its get_vqa_question at the pinned commit


class PromptsDocument(BaseModel):
    """What `prompts/<dataset>.json` holds; `read_prompts` returns it validated."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1]
    dataset: str
    source: Literal["reference", "curated", "llm"]
    curated_file: str | None
    llm: dict[str, Any] | None
    lists: AttributeLists
    attempts: list[Attempt]
    # the reference source: url template, commit, and {role: {path, url, sha256}} of every file read
    reference: dict[str, Any] | None = None
    color_table: dict[str, Any] | None = None  # {source, path/url, sha256, names} of the table colours came from
    categories: dict[str, str] = {}  # class -> the group whose lists it uses where lists are per group
    value_draw: ValueDraw = "distinct_values"  # how the edit plan draws from the lists (PromptsParams)
    # attribute -> the reference's filter questions (when prompts.reference.files names the generator files)
    questions: dict[Attribute, ReferenceQuestions] | None = None
    # our class name -> the reference's spelling, which its VLM was asked about (prompts.reference.files.class_names)
    class_names: dict[str, str] | None = None


def read_prompts(path: str | Path) -> PromptsDocument:
    """Read a prompts document back, validated (for the edit and filter stages)."""
    return PromptsDocument.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def list_key(attribute: str, feasibility: str, class_name: str | None = None) -> str:
    """The name a list goes by in attempts and errors: attribute[/class]/feasibility."""
    if class_name is None:
        return f"{attribute}/{feasibility}"
    return f"{attribute}/{class_name}/{feasibility}"
