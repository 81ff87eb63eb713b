"""The settings of the diffusion steps every edit method is made of (varireal.attributes.steps runs them).

Prompt templates may use {value}, {description}, {class_name} and {prefix}; any other placeholder
is an error when params.yaml is loaded. Each attribute's settings (varireal.attributes.<name>) are
made of these steps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from varireal.attributes.image_ops import Rounding
from varireal.schema import Strict, template_placeholders

# compel: prompts are encoded with the compel library, so a value's own weight markup (the reference's
# `(ruddy)1.3`) weights it, with every text encoder of the pipeline; an empty negative template then passes no
# negative prompt at all, as the reference does. none: plain text prompts (a value's `(text)1.3` markup reduced to
# `text`) and the negative templates as written.
PromptWeighting = Literal["compel", "none"]
PLACEHOLDERS = ("value", "description", "class_name", "prefix")


def check_template(template: str) -> str:
    """A prompt template may only name the placeholders every edit can fill."""
    template_placeholders(template, PLACEHOLDERS, "prompt template")
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


# per_step: every pipeline call draws its noise from a generator of its own, seeded from the item and the step.
# reference: the reference's (generator/base.py:253-261): one CPU generator seeded with 42 or 3407 (the choice
# drawn from the item's seed where the reference drew it from Python's global `random`), shared by the method's
# SDXL calls, so the regeneration continues the refinement's stream; an image and value have two outputs at most.
Seeding = Literal["per_step", "reference"]


class MethodBlock(Strict):
    """What every attribute's settings have: how its prompts are weighted, where its noise comes from and
    whether its SDXL outputs carry diffusers' invisible watermark. Each attribute's `feasibility` holds, per
    feasibility, the whole block with that feasibility's differences merged in (done when params.yaml is loaded)."""

    prompt_weighting: PromptWeighting
    rounding: Rounding = Field(
        "round",
        description="how the method's floats become 8-bit pixels (its tint or swatch blend, every SDXL output): "
        "truncate, the reference's astype(uint8) | round",
    )
    seeding: Seeding = Field(
        "per_step",
        description="per_step: each pipeline call seeded from the item and the step; reference: one generator "
        "seeded 42 or 3407 shared by the SDXL calls (SD 2.1 calls stay per_step: the reference left them unseeded)",
    )
    watermark: bool = Field(
        False,
        description="diffusers' invisible watermark (invisible-watermark's dwtDct) on every SDXL output of 256 px "
        "or more, re-quantised to 8 bits, as the reference's environment had it; needs that package",
    )
