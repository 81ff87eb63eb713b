"""The `edit:` section of params.yaml: how each attribute is edited, and what differs per dataset.

Every number the paper's reference hard-coded per dataset (steps, guidance, strength, mask
dilation and blur, tint range, ControlNet and IP-Adapter scales, canny thresholds, prompt
templates) is a field here. Prompt templates may use {value}, {description}, {class_name}
and {prefix}; any other placeholder is an error when params.yaml is loaded.

Each profile holds one block of method settings and, per dataset, only what differs; a
method's block may also name what differs per feasibility:

    edit:
      paper:
        methods: {background: {...}, color: {...}, texture: {...}}
        datasets:
          stanford_cars:
            color:
              refine: {strength: 0.85}                       # both feasibilities
              feasibility:
                infeasible: {alpha: {low: 0.6, high: 0.6}}   # infeasible only

The settings of (dataset, attribute, feasibility) are `methods.<attribute>`, then the dataset's
differences, then the feasibility's (from `methods` and the dataset, merged): mappings merge key
by key (varireal.differences), anything else is replaced. Every combination is validated as strictly as
`methods` itself when params.yaml is loaded, and an error names its full path
(edit.paper.datasets.stanford_cars.color.feasibility.infeasible.alpha.low).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model, field_validator, model_validator

from varireal.attributes.registry import ATTRIBUTE_METHODS, attribute_method
from varireal.attributes.step_settings import MethodBlock
from varireal.differences import each_merged
from varireal.settings.base import PerProfile, Strict, Study
from varireal.settings.filter import FilterParams
from varireal.vocabulary import FEASIBILITIES, Device

# Every attribute's settings: `edit.<profile>.methods`, or one dataset's after its differences.
MethodsSettings = create_model(
    "MethodsSettings",
    __base__=Strict,
    **{name: (method.settings, ...) for name, method in ATTRIBUTE_METHODS.items()},  # type: ignore[call-overload]
)


def with_feasibilities(methods: Any, where: str) -> Any:
    """Each method block's `feasibility.<name>` differences merged into the block (raw params, before validation)."""
    if not isinstance(methods, dict):
        return methods
    return {attribute: _resolve_feasibility(block, f"{where}.{attribute}") for attribute, block in methods.items()}


def _resolve_feasibility(block: Any, where: str) -> Any:
    if not (isinstance(block, dict) and isinstance(block.get("feasibility"), dict)):
        return block
    base = {key: value for key, value in block.items() if key != "feasibility"}
    for name, changes in block["feasibility"].items():
        if isinstance(changes, dict) and "feasibility" in changes:
            raise ValueError(f"{where}.feasibility.{name}.feasibility: differences per feasibility do not nest")
    return {**block, "feasibility": each_merged(base, block["feasibility"])}


class EditParams(Strict):
    """`edit.<profile>` in params.yaml."""

    device: Device
    processes: int = Field(
        1, ge=1, description="processes per machine (torchrun; varireal.launch); any count writes the same bytes"
    )
    batch_size: int = Field(gt=0, description="edits per pipeline call")
    work_size: int = Field(gt=0, description="side (px) of the padded square the pipelines see; a multiple of 8")
    images_per_real: int = Field(gt=0, description="edit slots per real image, each with a different value")
    candidates_per_slot: int = Field(gt=0, description="seeds tried per slot (the filter keeps the good ones)")
    shard_images: int = Field(gt=0, description="real images per shard file; a killed run loses at most one shard")
    offload: bool = Field(
        False, description="enable_model_cpu_offload: only for a GPU the method's models overfill; slower"
    )
    compile: bool = Field(
        False,
        description="torch.compile the UNet and ControlNet: opt-in; recorded, and its bytes may differ from eager ones",
    )
    early_stop: bool = Field(
        True,
        description="judge each round of candidates here with the filter's VLM, questions "
        "and threshold, and stop a slot at its first passing candidate",
    )
    seed: int
    methods: MethodsSettings
    # params.yaml lists only each dataset's (and feasibility's) differences; they are merged in before
    # validation, so a wrong key or value is named by its full path (edit.paper.datasets.<name>...).
    datasets: dict[str, MethodsSettings] = Field(
        default_factory=dict, description="per dataset: methods + its differences"
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_differences(cls, raw: Any) -> Any:
        if not (isinstance(raw, dict) and isinstance(raw.get("methods"), dict)):
            return raw
        datasets = raw.get("datasets")
        if isinstance(datasets, dict):
            datasets = {
                name: with_feasibilities(block, f"datasets.{name}")
                for name, block in each_merged(raw["methods"], datasets).items()
            }
        return {**raw, "methods": with_feasibilities(raw["methods"], "methods"), "datasets": datasets}

    @field_validator("work_size")
    @classmethod
    def _work_multiple_of_8(cls, size: int) -> int:
        if size % 8:
            raise ValueError(f"work_size={size}: the VAE needs a multiple of 8 (e.g. {size - size % 8 or 8})")
        return size

    def method(self, dataset: str, attribute: str, feasibility: str) -> MethodBlock:
        """One method's settings for one dataset and feasibility: `methods`, the dataset's differences, then the
        feasibility's (the result has no `feasibility` entries left)."""
        attribute_method(attribute)  # an unknown name is an error naming the known ones
        if feasibility not in FEASIBILITIES:
            raise ValueError(f"feasibility={feasibility!r}: expected {' or '.join(FEASIBILITIES)}")
        block = getattr(self.datasets.get(dataset, self.methods), attribute)
        return block.feasibility.get(feasibility, block).model_copy(update={"feasibility": {}})


class EditStage(Study):
    """What the edit stage reads: its section, and the filter's, whose judge early stop asks."""

    edit: PerProfile[EditParams]
    filter: PerProfile[FilterParams]
