"""The `masks:` section of params.yaml: detector box -> SAM 2 box-prompted mask."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from varireal.settings.base import PerProfile, Strict, Study
from varireal.vocabulary import Device

BoxChoice = Literal["first", "top_score"]


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


class MasksStage(Study):
    """What the masks stage reads."""

    masks: PerProfile[MasksParams]
