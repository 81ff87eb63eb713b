"""The `evaluate:` section of params.yaml: the kept adapter on the real test split."""

from __future__ import annotations

from pydantic import Field

from varireal.settings.base import PerProfile, Strict, Study
from varireal.settings.train import TrainSection
from varireal.vocabulary import Device


class EvaluateParams(Strict):
    device: Device = "auto"
    batch_size: int = Field(128, gt=0)
    num_workers: int = Field(4, ge=0)
    amp: bool = Field(True, description="fp16 autocast on CUDA only")
    save_logits: bool = Field(
        True, description="also write every class score per test image (predictions.csv's logits column)"
    )


class EvaluateStage(Study):
    """What the evaluate stage reads: its own section, and train's for the class template the adapter learned."""

    evaluate: PerProfile[EvaluateParams]
    train: TrainSection
