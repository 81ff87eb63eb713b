"""Settings of the `train` and `evaluate` stages, validated like the rest of params.yaml.

`train:` holds the study's knobs (what trains) once and the machine settings per profile:

    train:
      data: synthetic_real      # dvc exp run -S train.data=real_only
      images_per_class: null
      real_shots: null
      seed: 0
      tiny:  {epochs: 3, batch_size: 8, ...}
      paper: {epochs: 30, batch_size: 64, ...}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DataMode = Literal["synthetic_real", "synthetic_only", "real_only"]
Device = Literal["auto", "cpu", "cuda"]
MixMode = Literal["none", "cutmix", "mixup", "cutmix_or_mixup"]
Tower = Literal["image", "text"]
# Linear layers of an attention block LoRA may target: the split attention projections and the MLP.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj")


class LoraParams(BaseModel):
    """LoRA settings (paper: rank 16, alpha 32, dropout 0.1, q_proj + v_proj, both towers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(gt=0, description="rank r of the low-rank update B @ A")
    alpha: float = Field(gt=0, description="scaling numerator: the update is multiplied by alpha / rank")
    dropout: float = Field(ge=0, lt=1, description="dropout on the LoRA branch input during training")
    target_modules: tuple[str, ...] = Field(
        description=f"Linear layers of each attention block to adapt, from: {', '.join(LORA_TARGETS)}"
    )
    towers: tuple[Tower, ...] = Field(description="which towers get LoRA: image, text or both")

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in LORA_TARGETS]
        if not value or unknown or len(set(value)) != len(value):
            raise ValueError(
                f"target_modules={list(value)!r}: give one or more distinct names from {', '.join(LORA_TARGETS)} "
                "(the paper adapts q_proj and v_proj)"
            )
        return value

    @field_validator("towers")
    @classmethod
    def _towers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"towers={list(value)!r}: give image, text or both, each once")
        return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentParams(_Strict):
    """Train-time augmentation of every image (real and synthetic alike); eval only resizes and crops."""

    crop_scale: tuple[float, float] = Field((0.25, 1.0), description="random resized crop area range (paper 0.25-1)")
    flip_p: float = Field(0.5, ge=0, le=1, description="horizontal flip probability")
    randaugment_ops: int = Field(2, ge=0, description="RandAugment operations per image; 0 = RandAugment off")
    randaugment_magnitude: int = Field(9, ge=0, le=30)
    color_jitter: float = Field(0.4, ge=0, description="brightness/contrast/saturation strength; 0 = off")
    color_jitter_p: float = Field(0.8, ge=0, le=1)
    grayscale_p: float = Field(0.2, ge=0, le=1)
    blur_p: float = Field(0.1, ge=0, le=1)
    solarize_p: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _scale_range(self) -> AugmentParams:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale={list(self.crop_scale)}: need 0 < low <= high <= 1")
        return self


class MixParams(_Strict):
    """CutMix/MixUp inside each kind of a batch (real with real, synthetic with synthetic)."""

    mode: MixMode = Field("none", description="none | cutmix | mixup | cutmix_or_mixup (not \"off\": YAML 1.1 reads off as false)")
    alpha: float = Field(1.0, gt=0, description="Beta(alpha, alpha) of the mixing ratio")


class StudyParams(_Strict):
    """What the experiment trains on: the same on every machine, so `-S train.data=real_only` works in any profile."""

    data: DataMode = Field("synthetic_real", description="which images train: synthetic + real, one kind only")
    images_per_class: int | None = Field(None, gt=0, description="synthetic images per class at most; null = all accepted")
    real_shots: int | None = Field(None, gt=0, description="real train images per class; null = all")
    seed: int = 0


class MachineParams(_Strict):
    """How one profile trains: model size, schedule, batch, device (`train.tiny`, `train.paper`)."""

    device: Device = "auto"
    processes: int = Field(1, ge=1, description="DDP processes per machine (torchrun; varireal.launch)")
    batch_size: int = Field(64, gt=0, description="images of EACH kind per step (synthetic_real: 2x this per step)")
    epochs: int = Field(30, gt=0, description="passes over the larger kind; the smaller kind is cycled")
    lr: float = Field(1e-4, gt=0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="share of all steps with a linear warm-up")
    lambda_real: float = Field(0.5, ge=0, le=1, description="loss = l*CE(real) + (1-l)*CE(synthetic)")
    amp: bool = Field(True, description="fp16 autocast + GradScaler; only on CUDA, ignored on CPU")
    eval_every: int = Field(100, gt=0, description="steps between val evaluations (and one at the end)")
    eval_batch_size: int = Field(128, gt=0)
    checkpoint_every: int = Field(0, ge=0, description="steps between resumable checkpoints; 0 = none")
    num_workers: int = Field(4, ge=0, description="DataLoader worker processes")
    cache_decoded: bool = Field(False, description="keep decoded images in memory (per worker); small sets only")
    augment: AugmentParams = AugmentParams()
    cutmix_mixup: MixParams = MixParams()
    template: str = Field("a photo of a {prefix} {class_name}.", description="class text; {prefix} {class_name} filled in")
    lora: LoraParams


class TrainParams(StudyParams, MachineParams):
    """Everything one training run uses: the study's knobs and its profile's settings."""


class TrainSection(StudyParams):
    """`train:` in params.yaml: the study knobs at the top, one block of machine settings per profile."""

    tiny: MachineParams
    paper: MachineParams

    def pick(self, profile: str) -> TrainParams:
        study = StudyParams.model_fields.keys()
        return TrainParams(**{name: getattr(self, name) for name in study}, **dict(getattr(self, profile)))


class EvaluateParams(_Strict):
    device: Device = "auto"
    batch_size: int = Field(128, gt=0)
    num_workers: int = Field(4, ge=0)
    amp: bool = Field(True, description="fp16 autocast on CUDA only")
    save_logits: bool = Field(True, description="also write every class score per test image (predictions.csv's logits column)")
