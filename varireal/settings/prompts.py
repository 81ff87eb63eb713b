"""The `prompts:` section of params.yaml: where the feasible and infeasible value lists come from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from varireal.settings.base import PerProfile, Strict, Study
from varireal.settings.fetch import FetchParams

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


class ReferenceFile(Strict):
    path: str  # inside the reference repository, e.g. VariReal/src/config/config_back.py
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ReferenceSource(Strict):
    """Where the reference's value lists, colour table and aircraft categories are downloaded from."""

    url: str  # with {commit} and {path}, e.g. https://raw.githubusercontent.com/<owner>/<repo>/{commit}/{path}
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    files: dict[
        Literal[
            "background",
            "color",
            "texture",
            "color_table",
            "categories",
            "back_gen",
            "color_gen",
            "texture_gen",
            "class_names",
        ],
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


class PromptsParams(Strict):
    """`prompts.<profile>`. A curated file, when given, is used instead of the LLM."""

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


class PromptsStage(Study):
    """What the prompts stage reads: its section, and fetch's download settings (timeouts, retries)."""

    prompts: PerProfile[PromptsParams]
    fetch: FetchParams
