"""The `train:` section of params.yaml: what trains (the study's knobs) and how, per profile and dataset.

`train:` holds the study's knobs (what trains) once and the machine settings per profile:

    train:
      data: synthetic_real      # dvc exp run -S train.data=real_only
      images_per_class: null
      real_shots: null
      seed: 0
      tiny:  {batches: pool, batch_size: 16, ..., datasets: {demo: {steps: 24}}}
      paper: {batches: pool, batch_size: 64, ..., datasets: {stanford_cars: {steps: 78720, eval_every: 656}}}

`TrainSection.pick(profile, dataset)` resolves one run's settings: the profile's block with the
dataset's differences merged in.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from varireal.differences import each_merged
from varireal.schema import template_placeholders
from varireal.settings.base import ProtocolSection, Strict, Study
from varireal.vocabulary import Device

DataMode = Literal["synthetic_real", "synthetic_only", "real_only"]
# quick_gelu: OpenAI's x * sigmoid(1.702 x) in every MLP of both towers, as the reference's clip.load builds
# ViT-B/16; from_config: what the model's open_clip_config.json says (nn.GELU where it names no quick_gelu).
Activation = Literal["quick_gelu", "from_config"]
BatchMode = Literal["pool", "per_kind"]
MixMode = Literal["none", "cutmix", "mixup", "cutmix_or_mixup"]
Tower = Literal["image", "text"]
# Linear layers of an attention block LoRA may target: the split attention projections and the MLP.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj")


class LoraParams(Strict):
    """LoRA settings (paper: rank 16, alpha 32, dropout 0.1, q_proj + v_proj, both towers)."""

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


def _check_range(name: str, pair: tuple[float, float], low_bound: float, high_bound: float | None) -> None:
    low, high = pair
    if not low_bound < low <= high or (high_bound is not None and high > high_bound):
        upper = "" if high_bound is None else f" <= {high_bound:g}"
        raise ValueError(f"{name}={list(pair)}: need {low_bound:g} < low <= high{upper}")


class ColorJitterParams(Strict):
    """ColorJitter, applied with probability p (its four adjustments in a random order)."""

    brightness: float = Field(0.4, ge=0, description="factor drawn from U(max(0, 1-b), 1+b); 0 = unchanged")
    contrast: float = Field(0.4, ge=0, description="factor drawn from U(max(0, 1-c), 1+c); 0 = unchanged")
    saturation: float = Field(0.2, ge=0, description="factor drawn from U(max(0, 1-s), 1+s); 0 = unchanged")
    hue: float = Field(0.1, ge=0, le=0.5, description="hue shift drawn from U(-h, h), in turns of the colour wheel")
    p: float = Field(0.8, ge=0, le=1, description="probability the jitter runs at all; 0 = off")


class BlurParams(Strict):
    """PIL's GaussianBlur of the crop (its radius is the Gaussian's standard deviation), with probability p."""

    p: float = Field(0.2, ge=0, le=1, description="probability an image is blurred; 0 = off")
    sigma: tuple[float, float] = Field((0.1, 2.0), description="standard deviation drawn from U(low, high), in pixels")

    @model_validator(mode="after")
    def _sigma_range(self) -> BlurParams:
        _check_range("sigma", self.sigma, 0, None)
        return self


class SolarizeParams(Strict):
    """Invert every 8-bit channel value >= threshold, with probability p."""

    p: float = Field(0.2, ge=0, le=1, description="probability an image is solarized; 0 = off")
    threshold: int = Field(128, ge=0, le=255, description="channel values at or above it are inverted (0..255)")


# The augment keys of the earlier flat schema and where their values live now.
OLD_AUGMENT_KEYS = {
    "color_jitter": "color_jitter: {brightness, contrast, saturation, hue, p} (reference 0.4, 0.4, 0.2, 0.1, p 0.8)",
    "color_jitter_p": "color_jitter.p",
    "blur_p": "blur.p (with blur.sigma: [low, high])",
    "solarize_p": "solarize.p (with solarize.threshold)",
}


class AugmentParams(Strict):
    """Train-time augmentation of every image (real and synthetic alike); eval only resizes and crops.

    The defaults are the reference's (Finetune/classify/data.py:58-84, util_data.py:203-233):
    RandAugment on the full image, then the crop, flip, jitter, grayscale, blur, solarize.
    """

    randaugment_first: bool = Field(
        True, description="RandAugment on the full image before the crop (reference); false: after the crop and flip"
    )
    randaugment_ops: int = Field(2, ge=0, description="RandAugment operations per image; 0 = RandAugment off")
    randaugment_magnitude: int = Field(9, ge=0, le=30, description="RandAugment magnitude bin, of 31 (0..30)")
    crop_scale: tuple[float, float] = Field(
        (0.25, 1.0), description="random resized crop: range of the kept area share"
    )
    crop_ratio: tuple[float, float] = Field(
        (3 / 4, 4 / 3), description="random resized crop: range of its aspect ratio"
    )
    flip_p: float = Field(0.5, ge=0, le=1, description="horizontal flip probability")
    color_jitter: ColorJitterParams = ColorJitterParams()
    grayscale_p: float = Field(0.2, ge=0, le=1, description="probability an image is turned gray (3 equal channels)")
    blur: BlurParams = BlurParams()
    solarize: SolarizeParams = SolarizeParams()

    @model_validator(mode="before")
    @classmethod
    def _no_old_keys(cls, raw: Any) -> Any:
        """The flat keys of the earlier schema are named with their new place, not just refused."""
        if not isinstance(raw, dict):
            return raw
        new_jitter = isinstance(raw.get("color_jitter"), (dict, ColorJitterParams, type(None)))
        moved = [key for key in OLD_AUGMENT_KEYS if key in raw and not (key == "color_jitter" and new_jitter)]
        if moved:
            raise ValueError("; ".join(f"{key} is now {OLD_AUGMENT_KEYS[key]}" for key in moved))
        return raw

    @model_validator(mode="after")
    def _crop_ranges(self) -> AugmentParams:
        _check_range("crop_scale", self.crop_scale, 0, 1)
        _check_range("crop_ratio", self.crop_ratio, 0, None)
        return self


class MixParams(Strict):
    """CutMix/MixUp inside each kind of a batch (real with real, synthetic with synthetic)."""

    mode: MixMode = Field(
        "none", description='none | cutmix | mixup | cutmix_or_mixup (not "off": YAML 1.1 reads off as false)'
    )
    alpha: float = Field(1.0, gt=0, description="Beta(alpha, alpha) of the mixing ratio")


class TrainKnobs(Strict):
    """What the experiment trains on: the same on every machine, so `-S train.data=real_only` works in any profile."""

    data: DataMode = Field("synthetic_real", description="which images train: synthetic + real, one kind only")
    images_per_class: int | None = Field(
        None, gt=0, description="synthetic images per class at most; null = all accepted"
    )
    real_shots: int | None = Field(None, gt=0, description="real train images per class; null = all")
    seed: int = 0


class MachineParams(Strict):
    """How one profile trains: model size, schedule, batch, device (`train.tiny`, `train.paper`)."""

    device: Device = "auto"
    processes: int = Field(1, ge=1, description="DDP processes per machine (torchrun; varireal.launch)")
    batches: BatchMode = Field(
        "pool",
        description="pool: each step takes the next batch_size rows of one shuffled pool of synthetic rows + real rows "
        "x real_repeats (reference); per_kind: batch_size rows of EACH kind per step (a fixed 1:1 composition)",
    )
    real_repeats: int = Field(
        5,
        ge=1,
        description="pool only: times each real row enters the pool when synthetic rows train too (reference 5)",
    )
    batch_size: int = Field(
        64, gt=0, description="rows per step in pool mode; rows of EACH kind per step in per_kind mode"
    )
    epochs: int = Field(
        30, gt=0, description="passes over the pool (per_kind: over the larger kind); ignored when steps is set"
    )
    steps: int | None = Field(
        None, gt=0, description="optimizer steps in all, whatever the data (reference); null = epochs"
    )
    lr: float = Field(1e-4, gt=0, description="peak learning rate")
    min_lr: float = Field(1e-8, ge=0, description="lr floor: the warm-up starts there and the cosine ends there")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of all steps, int(fraction x steps), with a linear warm-up"
    )
    lambda_real: float = Field(
        0.5,
        ge=0,
        le=1,
        description="loss = l*CE(real rows) + (1-l)*CE(synthetic rows); a kind absent from a batch adds 0",
    )
    amp: bool = Field(True, description="fp16 autocast + GradScaler; only on CUDA, ignored on CPU")
    eval_every: int = Field(
        100, gt=0, description="steps between evaluations (and one at the end): val, and test under protocol paper"
    )
    eval_batch_size: int = Field(128, gt=0)
    checkpoint_every: int = Field(0, ge=0, description="steps between resumable checkpoints; 0 = none")
    num_workers: int = Field(4, ge=0, description="DataLoader worker processes")
    cache_decoded: bool = Field(False, description="keep decoded images in memory (per worker); small sets only")
    max_hours: float | None = Field(
        None,
        gt=0,
        description="stop a run whose time, measured on its first steps, would pass this; null: no limit",
    )
    jpeg_quality: int | None = Field(
        75,
        ge=1,
        le=95,
        description="training images (real and synthetic) pass through a JPEG encode/decode at this quality when read, "
        "as the reference's JPEG files did (PIL's default 75); null = lossless; never val/test; real_only runs read "
        "the original files, as the reference's real-only baseline did",
    )
    augment: AugmentParams = AugmentParams()
    cutmix_mixup: MixParams = MixParams()
    template: str = Field(
        "a {prefix} photo of a {class_name}",
        description="class text; {prefix} {class_name} filled in, runs of spaces collapsed (reference: 'a pet photo of a Abyssinian')",
    )
    lora: LoraParams
    activation: Activation = Field(
        "quick_gelu",
        description="the classifier's MLP activation: quick_gelu (OpenAI's, as clip.load builds ViT-B/16; forced "
        "whatever the model's config says) | from_config (open_clip_config.json's quick_gelu, else nn.GELU)",
    )

    @field_validator("template")
    @classmethod
    def _names_the_class(cls, template: str) -> str:
        if "class_name" not in template_placeholders(template, ("prefix", "class_name"), "class text template"):
            raise ValueError(f"class text template {template!r} lacks {{class_name}}: every class would get one text")
        return template

    @model_validator(mode="after")
    def _floor_below_peak(self) -> MachineParams:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr:g} is above lr={self.lr:g}: the floor must not exceed the peak")
        return self


class ProfileParams(MachineParams):
    """`train.<profile>`: one block of machine settings and, per dataset, only what differs.

    The differences are merged into the block (mappings key by key, as `edit.<profile>.datasets`)
    before validation, so a wrong key or value is named by its full path
    (train.paper.datasets.stanford_cars.steps).
    """

    datasets: dict[str, MachineParams] = Field(
        default_factory=dict, description="per dataset: the block + its differences"
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_differences(cls, raw: Any) -> Any:
        if not (isinstance(raw, dict) and isinstance(raw.get("datasets"), dict)):
            return raw
        block = {key: value for key, value in raw.items() if key != "datasets"}
        return {**raw, "datasets": each_merged(block, raw["datasets"])}

    def for_dataset(self, dataset: str) -> MachineParams:
        """The settings for one dataset: the block, with the dataset's differences if any."""
        if dataset in self.datasets:
            return self.datasets[dataset]
        return MachineParams(**{name: getattr(self, name) for name in MachineParams.model_fields})


class TrainParams(TrainKnobs, MachineParams):
    """Everything one training run uses: the study's knobs and its profile's settings for its dataset."""


class TrainSection(TrainKnobs):
    """`train:` in params.yaml: the study knobs at the top, one block of machine settings per profile."""

    tiny: ProfileParams
    paper: ProfileParams

    def pick(self, profile: str, dataset: str) -> TrainParams:
        study = {name: getattr(self, name) for name in TrainKnobs.model_fields}
        return TrainParams(**study, **dict(getattr(self, profile).for_dataset(dataset)))


class TrainStage(Study):
    """What the train stage reads."""

    protocol: ProtocolSection
    train: TrainSection

    def run(self) -> TrainParams:
        return self.train.pick(self.profile, self.dataset)
