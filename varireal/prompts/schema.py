"""The `prompts:` section of params.yaml and the document the prompts stage writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from varireal.vocabulary import Attribute

FORMAT_VERSION = 1
REFERENCE_ROLES = ("background", "color", "texture", "color_table", "categories")
# The generator files whose get_vqa_question holds the filter's questions, per attribute; optional
# (all three or none): given, the prompts document carries the reference's question templates.
QUESTION_ROLES = {"background": "back_gen", "color": "color_gen", "texture": "texture_gen"}
# How the reference fills its question's value, from the list entry "value: description":
# before_colon: the entry up to its first ':' (back_gen.py:257,263 `split(':')[0]`, weight kept);
# value: the value alone (color_gen.py:579,585, colours have no description);
# value_description: the whole entry (texture_gen.py:459,466).
ValueForm = Literal["before_colon", "value", "value_description"]
ValueDraw = Literal["positions", "distinct_values"]


class ReferenceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # inside the reference repository, e.g. VariReal/src/config/config_back.py
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ReferenceSource(BaseModel):
    """Where the reference's value lists, colour table and aircraft categories are downloaded from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # with {commit} and {path}, e.g. https://raw.githubusercontent.com/<owner>/<repo>/{commit}/{path}
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    files: dict[
        Literal["background", "color", "texture", "color_table", "categories", "back_gen", "color_gen", "texture_gen"],
        ReferenceFile,
    ]
    datasets: dict[str, str]  # our dataset key -> the reference's key (stanford_cars -> cars)

    def file_url(self, role: str) -> str:
        return self.url.format(commit=self.commit, path=self.files[role].path)  # type: ignore[index]

    @model_validator(mode="after")
    def _every_role(self) -> ReferenceSource:
        missing = [role for role in REFERENCE_ROLES if role not in self.files]
        if missing:
            raise ValueError(
                f"prompts.reference.files lacks {', '.join(missing)}; expected {', '.join(REFERENCE_ROLES)}"
            )
        given = [role for role in QUESTION_ROLES.values() if role in self.files]
        if given and len(given) != len(QUESTION_ROLES):
            raise ValueError(
                f"prompts.reference.files has {', '.join(given)} but not all of {', '.join(QUESTION_ROLES.values())}; "
                "the question files come all three (the filter's questions per attribute) or none"
            )
        return self

    def has_questions(self) -> bool:
        return all(role in self.files for role in QUESTION_ROLES.values())


class PromptsParams(BaseModel):
    """`prompts:` in params.yaml. A curated file, when given, is used instead of the LLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # where the value lists come from: the reference's frozen lists (downloaded at a pinned commit),
    # a curated YAML file, or an LLM; min/max_values and the duplicate checks apply to the last two.
    # Unset: "curated" when curated_file is given, else "llm" (the behaviour before this key existed)
    source: Literal["reference", "curated", "llm"]
    curated_file: str | None = None  # YAML lists; may contain "{dataset}"
    reference: ReferenceSource | None = None
    # colour names -> RGB before matplotlib's CSS4 and XKCD names: "reference" (its ColorGen.COLORS),
    # a local file in that format (a dict literal assigned to COLORS), or null (none)
    color_table: str | None = None
    # how the edit plan picks a list's values per real image: "positions" (the reference: distinct
    # list positions, so a repeated value may come twice; a short list is used whole plus draws with
    # replacement) or "distinct_values" (ours: distinct values, a list with too few is an error)
    value_draw: ValueDraw = "distinct_values"
    min_values: int = Field(ge=1)  # per list
    max_values: int = Field(ge=1)  # per list; longer LLM answers are truncated
    max_attempts: int = Field(ge=1)  # per list, each with its own seed
    seed: int
    max_new_tokens: int = Field(ge=1)
    temperature: float = Field(gt=0)  # generation always samples
    top_p: float = Field(gt=0, le=1)
    dataset_context: dict[str, str] = {}  # dataset key -> "photos of pet cats and dogs"

    @model_validator(mode="before")
    @classmethod
    def _known_keys_only(cls, data: Any) -> Any:
        # pydantic's own "extra inputs are not permitted" does not say which keys are allowed
        if isinstance(data, dict):
            unknown = [f"{key}={value!r}" for key, value in data.items() if key not in cls.model_fields]
            if unknown:
                raise ValueError(
                    f"unknown key(s) in prompts: {', '.join(unknown)}; allowed keys are {', '.join(cls.model_fields)}"
                )
            if data.get("source") is None:
                data = {**data, "source": "curated" if data.get("curated_file") is not None else "llm"}
        return data

    @model_validator(mode="after")
    def _source_has_what_it_needs(self) -> PromptsParams:
        if self.source == "curated" and self.curated_file is None:
            raise ValueError("prompts.source is 'curated' but prompts.curated_file is null; give the file")
        if self.reference is None and (self.source == "reference" or self.color_table == "reference"):
            raise ValueError(
                f"prompts.source={self.source!r}, prompts.color_table={self.color_table!r} need prompts.reference "
                "(url, commit, files, datasets)"
            )
        return self

    @model_validator(mode="after")
    def _min_not_above_max(self) -> PromptsParams:
        if self.min_values > self.max_values:
            raise ValueError(
                f"prompts.min_values={self.min_values} is larger than prompts.max_values={self.max_values}; "
                "min_values must be <= max_values"
            )
        return self


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


class AttributeLists(BaseModel):
    model_config = ConfigDict(extra="forbid")

    background: FeasibilityLists  # per dataset
    texture: FeasibilityLists  # per dataset (the reference: feasible per class for pets, per category for aircraft)
    color: dict[str, FeasibilityLists]  # per class, keyed by the real class name


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


def read_prompts(path: str | Path) -> PromptsDocument:
    """Read a prompts document back, validated (for the edit and filter stages)."""
    return PromptsDocument.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def list_key(attribute: str, feasibility: str, class_name: str | None = None) -> str:
    """The name a list goes by in attempts and errors: attribute[/class]/feasibility."""
    if class_name is None:
        return f"{attribute}/{feasibility}"
    return f"{attribute}/{class_name}/{feasibility}"
