"""The `edit:` section of the params: the edit stages' machine settings, and each attribute's method.

Every number the paper's reference hard-coded per dataset (steps, guidance, strength, mask
dilation and blur, tint range, ControlNet and IP-Adapter scales, canny thresholds, prompt
templates) is a field of an attribute's settings (varireal.attributes.<name>). Prompt templates
may use {value}, {description}, {class_name} and {prefix}; any other placeholder is an error when
the params are loaded.

Each profile holds every attribute's block once (`methods`, which any dataset uses) and, per dataset,
the blocks that differ, each written out whole (it replaces the `methods` block for that dataset, so
a value is found in one block); a block may also list what differs per feasibility:

    edit:
      paper:
        methods: {background: {...}, color: {...}, texture: {...}}
        datasets:
          stanford_cars:
            color:                                            # the whole colour block for Cars
              ...
              feasibility:
                infeasible: {alpha: {low: 0.6, high: 0.6}}    # infeasible only, merged key by key

Every block is validated as strictly as `methods` when the params are loaded, and an error names
its full path (edit.paper.datasets.stanford_cars.color.feasibility.infeasible.alpha.low).
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

# Every attribute's settings: `edit.<profile>.methods`.
MethodsSettings = create_model(
    "MethodsSettings",
    __base__=Strict,
    **{name: (method.settings, ...) for name, method in ATTRIBUTE_METHODS.items()},  # type: ignore[call-overload]
)
# One dataset's blocks: the attributes whose method differs for it, each whole.
DatasetMethods = create_model(
    "DatasetMethods",
    __base__=Strict,
    **{name: (method.settings | None, None) for name, method in ATTRIBUTE_METHODS.items()},  # type: ignore[call-overload]
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
    datasets: dict[str, DatasetMethods] = Field(
        default_factory=dict, description="per dataset: the attributes whose block differs, each block whole"
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_feasibilities(cls, raw: Any) -> Any:
        # merged on the raw params, so a wrong key or value is named by its full path
        if not isinstance(raw, dict):
            return raw
        datasets = raw.get("datasets")
        if isinstance(datasets, dict):
            datasets = {name: with_feasibilities(block, f"datasets.{name}") for name, block in datasets.items()}
        return {**raw, "methods": with_feasibilities(raw.get("methods"), "methods"), "datasets": datasets or {}}

    @field_validator("work_size")
    @classmethod
    def _work_multiple_of_8(cls, size: int) -> int:
        if size % 8:
            raise ValueError(f"work_size={size}: the VAE needs a multiple of 8 (e.g. {size - size % 8 or 8})")
        return size

    def method(self, dataset: str, attribute: str, feasibility: str) -> MethodBlock:
        """One attribute's settings for one dataset and feasibility: the dataset's block or else `methods`', with
        the feasibility's differences (the result has no `feasibility` entries left)."""
        attribute_method(attribute)  # an unknown name is an error naming the known ones
        if feasibility not in FEASIBILITIES:
            raise ValueError(f"feasibility={feasibility!r}: expected {' or '.join(FEASIBILITIES)}")
        own = self.datasets.get(dataset)
        block = getattr(own, attribute, None) if own is not None else None
        block = block if block is not None else getattr(self.methods, attribute)
        return block.feasibility.get(feasibility, block).model_copy(update={"feasibility": {}})


class EditStage(Study):
    """What the edit stage reads: its section, and the filter's, whose judge early stop asks."""

    edit: PerProfile[EditParams]
    filter: PerProfile[FilterParams]
