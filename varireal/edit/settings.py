"""The `edit:` section of params.yaml: how each method edits, and what differs per dataset.

Every number the paper's reference hard-coded per dataset (steps, guidance, strength, mask
dilation and blur, tint range, ControlNet and IP-Adapter scales, canny thresholds, prompt
templates) is a field here. Prompt templates may use {value}, {description}, {class_name}
and {prefix}; any other placeholder is an error when params.yaml is loaded.

Each profile holds one block of method settings and, per dataset, only what differs:

    edit:
      paper:
        methods: {background: {...}, color: {...}, texture: {...}}
        datasets:
          stanford_cars: {color: {refine: {strength: 0.3}}}   # the rest as in methods

A dataset's settings are `methods` with its differences merged in (mappings key by key),
validated as strictly as `methods` itself when params.yaml is loaded.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from varireal.prompts.schema import ATTRIBUTES

Device = Literal["auto", "cpu", "cuda"]
PLACEHOLDERS = ("value", "description", "class_name", "prefix")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_template(template: str) -> str:
    """A prompt template may only name the placeholders every edit can fill."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise ValueError(f"prompt template {template!r} is not a valid format string ({err})") from None
    unknown = [name for name in fields if name not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"prompt template {template!r} uses {{{unknown[0]}}}; allowed placeholders: "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        )
    return template


class PromptedStep(Strict):
    """One diffusion call: its prompt templates, steps and classifier-free guidance."""

    prompt: str
    negative_prompt: str = ""
    steps: int = Field(gt=0)
    guidance: float = Field(ge=0)

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        return check_template(template)


class Text2ImageStep(PromptedStep):
    """SD 2.1 text-to-image (a background, a texture swatch) at `size` px, then resized to the work square."""

    size: int = Field(gt=0, description="generated side (px); a multiple of 8, e.g. 512 for SD 2.1 base")

    @field_validator("size")
    @classmethod
    def _multiple_of_8(cls, size: int) -> int:
        if size % 8:
            raise ValueError(f"size={size}: the VAE needs a multiple of 8 (e.g. {size - size % 8 or 8})")
        return size


class InpaintStep(PromptedStep):
    """SDXL inpainting over a mask; strength < 1 keeps part of what is already there."""

    strength: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _at_least_one_step(self) -> InpaintStep:
        # diffusers runs int(steps * strength) steps and refuses zero
        if int(self.steps * self.strength) < 1:
            raise ValueError(
                f"steps={self.steps} x strength={self.strength} runs no denoising step; "
                f"raise steps to at least {int(1 / self.strength) + 1} or strength"
            )
        return self


class RegenerateStep(PromptedStep):
    """Canny ControlNet SDXL + IP-Adapter: redraw the object from its edges and an image of the edited object."""

    controlnet_scale: float = Field(ge=0)
    ip_adapter_scale: float = Field(ge=0)
    canny_low: int = Field(ge=0, le=255)
    canny_high: int = Field(ge=0, le=255)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> RegenerateStep:
        if self.canny_low > self.canny_high:
            raise ValueError(f"canny_low={self.canny_low} is above canny_high={self.canny_high}")
        return self


class AlphaRange(Strict):
    """A per-item blend weight drawn uniformly from [low, high] with the item's own seed."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> AlphaRange:
        if self.low > self.high:
            raise ValueError(f"low={self.low} is above high={self.high}")
        return self


class BackgroundSettings(Strict):
    scene: Text2ImageStep  # the background, without the object
    dilation_px: int = Field(ge=0, description="object mask grown by this many work-square px before pasting")
    blur_px: float = Field(ge=0, description="Gaussian blur radius (work-square px) of the harmonizing mask")
    harmonize: InpaintStep  # SDXL inpainting over the blurred background mask


class ColorSettings(Strict):
    alpha: AlphaRange  # tint weight: orig * (1 - a) + rgb * a
    refine: InpaintStep  # SDXL inpainting inside the mask, low-to-mid strength
    regenerate: RegenerateStep


class TextureSettings(Strict):
    swatch: Text2ImageStep
    crop_fraction: float = Field(gt=0, le=1, description="central share of the swatch kept before upscaling")
    alpha: AlphaRange  # swatch blend weight inside the mask
    refine: InpaintStep
    regenerate: RegenerateStep


class MethodsSettings(Strict):
    """The three methods' settings: `edit.<profile>.methods`, or one dataset's after its differences."""

    background: BackgroundSettings
    color: ColorSettings
    texture: TextureSettings


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


MethodSettings = BackgroundSettings | ColorSettings | TextureSettings


class EditParams(Strict):
    """`edit.<profile>` in params.yaml."""

    device: Device
    processes: int = Field(1, ge=1, description="processes per machine (torchrun; varireal.launch); any count writes the same bytes")
    batch_size: int = Field(gt=0, description="edits per pipeline call")
    work_size: int = Field(gt=0, description="side (px) of the padded square the pipelines see; a multiple of 8")
    images_per_real: int = Field(gt=0, description="edit slots per real image, each with a different value")
    candidates_per_slot: int = Field(gt=0, description="seeds tried per slot (the filter keeps the good ones)")
    shard_images: int = Field(gt=0, description="real images per shard file; a killed run loses at most one shard")
    offload: bool = Field(False, description="enable_model_cpu_offload: only for a GPU the method's models overfill; slower")
    compile: bool = Field(False, description="torch.compile the UNet and ControlNet: opt-in; recorded, and its bytes "
                                             "may differ from eager ones")
    early_stop: bool = Field(True, description="judge each round of candidates here with the filter's VLM, questions "
                                              "and threshold, and stop a slot at its first passing candidate")
    seed: int
    methods: MethodsSettings
    # params.yaml lists only each dataset's differences; they are merged into `methods` before
    # validation, so a wrong key or value is named by its full path (edit.paper.datasets.<name>...).
    datasets: dict[str, MethodsSettings] = Field(default_factory=dict, description="per dataset: methods + its differences")

    @model_validator(mode="before")
    @classmethod
    def _merge_differences(cls, raw: Any) -> Any:
        if not (isinstance(raw, dict) and isinstance(raw.get("methods"), dict) and isinstance(raw.get("datasets"), dict)):
            return raw
        return {**raw, "datasets": {name: merged(raw["methods"], changes or {}) if isinstance(changes, dict | None) else changes
                                    for name, changes in raw["datasets"].items()}}

    @field_validator("work_size")
    @classmethod
    def _work_multiple_of_8(cls, size: int) -> int:
        if size % 8:
            raise ValueError(f"work_size={size}: the VAE needs a multiple of 8 (e.g. {size - size % 8 or 8})")
        return size

    def method(self, dataset: str, attribute: str) -> MethodSettings:
        """The settings of one method for one dataset: `methods`, with the dataset's differences if any."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"attribute={attribute!r}: expected {', '.join(ATTRIBUTES[:-1])} or {ATTRIBUTES[-1]}")
        return getattr(self.datasets.get(dataset, self.methods), attribute)
