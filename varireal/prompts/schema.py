"""The `prompts:` section of params.yaml and the document the prompts stage writes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ATTRIBUTES = ("background", "color", "texture")
FEASIBILITIES = ("feasible", "infeasible")
FORMAT_VERSION = 1


class PromptsParams(BaseModel):
    """`prompts:` in params.yaml. A curated file, when given, is used instead of the LLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    curated_file: str | None = None  # YAML lists; may contain "{dataset}"
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
        return data

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

    value: str  # inserted into edit prompts, e.g. "suburban backyard"
    description: str  # one sentence of what it looks like


class FeasibilityLists(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feasible: list[AttributeValue]
    infeasible: list[AttributeValue]


class AttributeLists(BaseModel):
    model_config = ConfigDict(extra="forbid")

    background: FeasibilityLists  # per dataset
    texture: FeasibilityLists  # per dataset
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


class PromptsDocument(BaseModel):
    """What `prompts/<dataset>.json` holds; `read_prompts` returns it validated."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1]
    dataset: str
    source: Literal["curated", "llm"]
    curated_file: str | None
    llm: dict[str, Any] | None
    lists: AttributeLists
    attempts: list[Attempt]


def list_key(attribute: str, feasibility: str, class_name: str | None = None) -> str:
    """The name a list goes by in attempts and errors: attribute[/class]/feasibility."""
    if class_name is None:
        return f"{attribute}/{feasibility}"
    return f"{attribute}/{class_name}/{feasibility}"
