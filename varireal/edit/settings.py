"""The `edit:` section of params.yaml: how each method edits, and what differs per dataset.

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

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from varireal.devices import Device
from varireal.differences import each_merged
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES, Feasibility

# compel: prompts are encoded with the compel library, so a value's own weight markup (the reference's
# `(ruddy)1.3`) weights it, with every text encoder of the pipeline; an empty negative template then passes no
# negative prompt at all, as the reference does. none: plain text prompts (a value's `(text)1.3` markup reduced to
# `text`) and the negative templates as written.
PromptWeighting = Literal["compel", "none"]
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
    scheduler: Literal["default", "dpm_solver_multistep"] = Field(
        "default",
        description="default: the repo's own scheduler; dpm_solver_multistep: the reference's swap "
        "(DPMSolverMultistepScheduler.from_config of the repo's, generator/base.py:302)",
    )

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


class Canny(Strict):
    """The edge map the ControlNet follows: of what, and with which hysteresis thresholds."""

    source: Literal["object_on_white", "image"] = Field(
        description="object_on_white: the original object, white elsewhere (padding too), edges over the RGB channels "
        "(the reference); image: the whole work square in grayscale, background and padding included"
    )
    low: int | Literal["auto"] = Field(
        description="auto: int(0.7 x median of the 5x5 box-blurred input), the reference's rule; or a number 0-255"
    )
    high: int = Field(ge=0, le=255)

    @field_validator("low")
    @classmethod
    def _in_range(cls, low: int | str) -> int | str:
        if isinstance(low, int) and not 0 <= low <= 255:
            raise ValueError(f"low={low}: expected 0-255 or 'auto'")
        return low

    @model_validator(mode="after")
    def _ordered(self) -> Canny:
        if isinstance(self.low, int) and self.low > self.high:
            raise ValueError(f"low={self.low} is above high={self.high}")
        return self


class RegenerateStep(PromptedStep):
    """Canny ControlNet SDXL + IP-Adapter: redraw the object from its edges and an image of the edited object."""

    controlnet_scale: float = Field(ge=0, description="controlnet_conditioning_scale (diffusers' default 1.0)")
    ip_adapter_scale: float = Field(ge=0)
    ip_adapter_fill: int = Field(ge=0, le=255, description="gray level around the object in the IP-Adapter's image")
    canny: Canny


class AlphaRange(Strict):
    """A per-item blend weight drawn uniformly from [low, high] with the item's own seed; low == high fixes it
    (the reference's fixed alpha per dataset and feasibility)."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> AlphaRange:
        if self.low > self.high:
            raise ValueError(f"low={self.low} is above high={self.high}")
        return self


class Dilation(Strict):
    """How far the object mask grows before the original is pasted over the new scene."""

    kernel: Literal["square", "ellipse"] = Field(
        description="square: cv2.dilate with np.ones((size, size)), the reference's; ellipse: corners grow round"
    )
    size: int = Field(ge=0, description="kernel side (work-square px); 0 or 1 keeps the mask as it is")


class MethodBlock(Strict):
    """What every method has: how its prompts are weighted. Each method's `feasibility` holds, per feasibility,
    the whole block with that feasibility's differences merged in (done when params.yaml is loaded)."""

    prompt_weighting: PromptWeighting


class BackgroundSettings(MethodBlock):
    feasibility: dict[Feasibility, BackgroundSettings] = Field(default_factory=dict)
    scene: Text2ImageStep  # the background, without the object
    dilation: Dilation
    blur_px: float = Field(ge=0, description="Gaussian blur radius (work-square px) of the harmonizing mask")
    harmonize: InpaintStep  # SDXL inpainting over the blurred background mask


class ColorSettings(MethodBlock):
    feasibility: dict[Feasibility, ColorSettings] = Field(default_factory=dict)
    alpha: AlphaRange  # tint weight: orig * (1 - a) + rgb * a
    refine: InpaintStep  # SDXL inpainting inside the mask, low-to-mid strength
    regenerate: RegenerateStep


class TextureSettings(MethodBlock):
    feasibility: dict[Feasibility, TextureSettings] = Field(default_factory=dict)
    swatch: Text2ImageStep
    crop_fraction: float = Field(gt=0, le=1, description="share of the swatch's side kept before upscaling")
    crop_position: Literal["center", "random"] = Field(
        description="random: anywhere, drawn from the item's seed (the reference draws it unseeded); center"
    )
    sharpen: bool = Field(
        description="3x3 sharpening of the upscaled crop (the reference's [[0,-1,0],[-1,5,-1],[0,-1,0]])"
    )
    alpha: AlphaRange  # swatch blend weight inside the mask
    refine: InpaintStep
    regenerate: RegenerateStep


class MethodsSettings(Strict):
    """The three methods' settings: `edit.<profile>.methods`, or one dataset's after its differences."""

    background: BackgroundSettings
    color: ColorSettings
    texture: TextureSettings


MethodSettings = BackgroundSettings | ColorSettings | TextureSettings


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

    def method(self, dataset: str, attribute: str, feasibility: str) -> MethodSettings:
        """One method's settings for one dataset and feasibility: `methods`, the dataset's differences, then the
        feasibility's (the result has no `feasibility` entries left)."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"attribute={attribute!r}: expected {', '.join(ATTRIBUTES[:-1])} or {ATTRIBUTES[-1]}")
        if feasibility not in FEASIBILITIES:
            raise ValueError(f"feasibility={feasibility!r}: expected {' or '.join(FEASIBILITIES)}")
        block = getattr(self.datasets.get(dataset, self.methods), attribute)
        return block.feasibility.get(feasibility, block).model_copy(update={"feasibility": {}})
