"""params.yaml, validated: every stage starts by loading it through `load_params`.

A wrong key or value stops the stage with a message that names the key, the value given
and what is allowed, before any model is loaded or file is written.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from varireal.datasets.config import FetchParams, Protocol
from varireal.devices import Device
from varireal.differences import merged, set_in_both
from varireal.edit.settings import EditParams
from varireal.finetune.settings import EvaluateParams, StudyParams, TrainSection
from varireal.io import DuplicateKeyError, read_yaml
from varireal.judge.questions import FilterParams
from varireal.models.roles import ModelsParams
from varireal.prompts.schema import PromptsParams
from varireal.vocabulary import PROFILES, Attribute, DatasetName, Profile, TrainFeasibility

BoxChoice = Literal["first", "top_score"]

T = TypeVar("T", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerProfile(Strict, Generic[T]):
    """A section whose settings differ between the tiny (CPU) and paper (GPU) profiles.

    In params.yaml the keys written beside the two blocks are shared (with_shared_settings merges
    them into both before validation), so each block states only what differs.
    """

    tiny: T
    paper: T

    def pick(self, profile: Profile) -> T:
        return getattr(self, profile)


class ProtocolSection(Strict):
    """`protocol:` per profile: which real images train and which checkpoint is kept (config.Protocol)."""

    tiny: Protocol
    paper: Protocol

    def pick(self, profile: Profile) -> Protocol:
        return getattr(self, profile)


class DatasetParams(Strict):
    prefix: str = Field(description="word put before the class name, e.g. 'pet' -> 'a pet Abyssinian.'")


class MasksParams(Strict):
    device: Device
    processes: int = Field(
        1, ge=1, description="processes per machine (torchrun; varireal.launch); any count writes the same bytes"
    )
    batch_size: int = Field(gt=0)
    work_size: int = Field(gt=0, description="long side (px) of the padded square the models see")
    box_threshold: float = Field(ge=0, le=1)
    text_threshold: float = Field(ge=0, le=1)
    text_template: str = Field(description="detector text; {prefix} and {class_name} are filled in")
    box: BoxChoice = Field(
        description="which detected box prompts SAM 2: first (above the threshold, in the detector's "
        "query order: the reference's) or top_score"
    )


class GalleryParams(Strict):
    rows: int = Field(gt=0, description="real images shown per attribute")
    tile: int = Field(ge=32, description="tile size (px) of each image in the sheet")


class Params(Strict):
    profile: Profile
    dataset: DatasetName
    feas: TrainFeasibility
    attr: Attribute
    datasets: dict[DatasetName, DatasetParams]
    protocol: ProtocolSection
    fetch: FetchParams
    models: ModelsParams
    masks: PerProfile[MasksParams]
    prompts: PerProfile[PromptsParams]
    edit: PerProfile[EditParams]
    filter: PerProfile[FilterParams]
    gallery: GalleryParams
    train: TrainSection
    evaluate: PerProfile[EvaluateParams]

    @model_validator(mode="before")
    @classmethod
    def _no_bool_as_number(cls, raw: Any) -> Any:
        # pydantic reads true as 1 where a number is expected (`epochs: true` trained one epoch). One rule
        # for every section: params.yaml is read against the models' own schema, before any other check.
        schema = json_schema(cls)
        slipped = bools_given_for_numbers(raw, schema, schema.get("$defs", {}))
        if slipped:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(type=PydanticCustomError("bool_as_number", BOOL_AS_NUMBER), loc=loc, input=value)
                    for loc, value in slipped.items()
                ],
            )
        return raw

    @model_validator(mode="after")
    def _edit_differences_name_datasets(self) -> Params:
        for profile in get_args(Profile):
            for section, named in (
                ("edit", self.edit.pick(profile).datasets),
                ("train", getattr(self.train, profile).datasets),
            ):
                unknown = sorted(set(named) - set(get_args(DatasetName)))
                if unknown:
                    raise ValueError(
                        f"{section}.{profile}.datasets.{unknown[0]}: unknown dataset; allowed: {', '.join(get_args(DatasetName))}"
                    )
        return self

    def dataset_params(self) -> DatasetParams:
        if self.dataset not in self.datasets:
            raise ParamsError(f"datasets.{self.dataset}: missing; add a section for the chosen dataset")
        return self.datasets[self.dataset]


BOOL_AS_NUMBER = "a number is expected, not a boolean (YAML reads true/false, yes/no and on/off as booleans)"


@cache
def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def bools_given_for_numbers(
    raw: Any, schema: dict[str, Any], defs: dict[str, Any], loc: tuple = ()
) -> dict[tuple, bool]:
    """{key path: value} of every true/false in `raw` where `schema` (a model's JSON schema) allows only numbers."""
    branches = [
        defs[branch["$ref"].rsplit("/", 1)[1]] if "$ref" in branch else branch
        for branch in schema.get("anyOf", [schema])
    ]
    if isinstance(raw, bool):
        types = {branch.get("type") for branch in branches}
        return {loc: raw} if types & {"integer", "number"} and "boolean" not in types else {}
    found: dict[tuple, bool] = {}
    for branch in branches:
        if isinstance(raw, dict):
            parts = [(key, branch.get("properties", {}).get(key, branch.get("additionalProperties"))) for key in raw]
        elif isinstance(raw, list):
            prefix = branch.get("prefixItems", [])
            parts = [
                (index, prefix[index] if index < len(prefix) else branch.get("items")) for index in range(len(raw))
            ]
        else:
            parts = []
        for key, part in parts:
            if isinstance(part, dict):
                found |= bools_given_for_numbers(raw[key], part, defs, (*loc, key))
    return found


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or has a key or value that is not allowed."""


# Sections with a tiny and a paper block; beside the blocks, the keys that are not the section's own
# fields (train's study knobs) are shared by both profiles.
PROFILED_SECTIONS = ("masks", "prompts", "edit", "filter", "train", "evaluate")


def _own_fields(section: str) -> set[str]:
    return set(StudyParams.model_fields) if section == "train" else set()


def with_shared_settings(raw: Any) -> Any:
    """raw params where each profiled section's shared keys are merged into its tiny and paper blocks
    (mappings key by key), so the schema sees whole blocks.

    A setting lives in one place: a key both shared and in a block is refused, so dvc.yaml can name
    each stage's params exactly (`masks.box_threshold`, `masks.${profile}.batch_size`).
    """
    if not isinstance(raw, dict):
        return raw
    whole = dict(raw)
    for name in PROFILED_SECTIONS:
        section = raw.get(name)
        if not isinstance(section, dict):
            continue
        shared = {k: v for k, v in section.items() if k not in PROFILES and k not in _own_fields(name)}
        whole[name] = {k: v for k, v in section.items() if k in PROFILES or k in _own_fields(name)}
        for profile in PROFILES:
            block = section.get(profile)
            if isinstance(block, dict):
                if twice := set_in_both(shared, block):
                    written = ".".join((name, *twice[0]))
                    raise ParamsError(
                        f"{name}.{profile}.{'.'.join(twice[0])}: {written} is already set for both profiles; "
                        f"a setting is written once, either beside the blocks or in both of them"
                    )
                block = merged(shared, block)
            whole[name][profile] = block
    return whole


def written_at(raw: Any, loc: tuple) -> tuple:
    """Where in params.yaml a validated key path is written: `masks.tiny.box_threshold` is written as
    `masks.box_threshold` when the block does not set it itself."""
    if len(loc) < 3 or loc[0] not in PROFILED_SECTIONS or loc[1] not in PROFILES or not isinstance(raw, dict):
        return loc
    node = raw.get(loc[0], {}).get(loc[1]) if isinstance(raw.get(loc[0]), dict) else None
    for part in loc[2:]:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:  # pydantic's "[key]" marks a mapping's key, present in the block
            return loc if part == "[key]" or not isinstance(node, dict) else (loc[0], *loc[2:])
    return loc


def load_params(path: str | Path = "params.yaml", overrides: list[str] = ()) -> Params:
    """params.yaml validated; `overrides` are `key.path=value` as in `dvc exp run -S` (existing keys only)."""
    path = Path(path)
    try:
        raw = read_yaml(path.read_text(), path)
    except DuplicateKeyError as err:
        raise ParamsError(str(err)) from None
    except FileNotFoundError as err:
        raise ParamsError(f"{path}: not found; run from the repository root") from err
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from err
    for override in overrides:
        apply_override(raw, override, path)
    try:
        whole = with_shared_settings(raw)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None
    try:
        return Params.model_validate(whole)
    except ValidationError as err:
        raise ParamsError(describe_errors(path, err, raw)) from None


def apply_override(raw: dict, override: str, path: Path) -> None:
    """Set `a.b.c=value` (value read as YAML) in the raw params; the key must exist, as for `dvc exp run -S`."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ParamsError(f"-S {override!r}: expected key=value, e.g. profile=paper")
    *parents, last = key.split(".")
    node = raw
    for depth, part in enumerate([*parents, last]):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"-S {override}: {'.'.join([*parents, last][: depth + 1])} is not a key of {path}")
        if depth < len(parents):
            node = node[part]
    node[last] = yaml.safe_load(text)


def describe_errors(path: Path, err: ValidationError, raw: Any = None) -> str:
    """One line per error, each naming the key as params.yaml writes it (raw: the params as read); a
    shared key that is wrong for both profiles is one line."""
    lines: dict[str, None] = {}
    for error in err.errors():
        key = ".".join(str(part) for part in written_at(raw, tuple(error["loc"])))
        value = _short(error.get("input"))
        if not key:  # a check across sections says where itself
            lines[f"  {error['msg'].removeprefix('Value error, ')}"] = None
        elif error["type"] == "extra_forbidden":
            lines[f"  {key} = {value}: unknown key (misspelled? see params.yaml for the allowed keys)"] = None
        elif error["type"] == "missing":
            lines[f"  {key}: required key is missing"] = None
        else:
            lines[f"  {key} = {value}: {error['msg']}"] = None
    return "\n".join([f"{path}: {len(lines)} invalid setting(s)", *lines])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
