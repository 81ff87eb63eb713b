"""Texture: the object's surface material changes, its shape and the background do not.

A text-to-image texture swatch (SD 2.1), a window of it upscaled to the work square (and sharpened,
as the reference), alpha-blended into the mask, SDXL inpainting inside the mask to refine it, then
the same ControlNet + IP-Adapter redraw as colour onto the ORIGINAL background. Values: one list per
dataset, or per class or category where the reference's lists are ("metallic paint" against
"cracked marble").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from varireal.attributes import image_ops as ops
from varireal.attributes.image_ops import Upscale
from varireal.attributes.item import EditItem
from varireal.attributes.kind import AttributeMethod, Guide
from varireal.attributes.pipelines import Editors
from varireal.attributes.step_settings import AlphaRange, InpaintStep, MethodBlock, RegenerateStep, Text2ImageStep
from varireal.attributes.steps import (
    Edited,
    Job,
    draw_alpha,
    filled_prompts,
    need,
    noise_record,
    redraw_object,
    text_to_image,
)
from varireal.seeding import item_rng
from varireal.vocabulary import Feasibility


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
    upscale: Upscale = Field(
        "pil_bicubic", description="the crop's upscaling: cv2_cubic (OpenCV INTER_CUBIC, the reference's) | pil_bicubic"
    )
    alpha: AlphaRange  # swatch blend weight inside the mask
    refine: InpaintStep
    regenerate: RegenerateStep


def edit_texture(editors: Editors, jobs: Sequence[Job], settings: TextureSettings) -> list[Edited]:
    """Texture swatch -> crop/upscale -> blend inside the mask -> inpaint-refine -> ControlNet + IP-Adapter."""
    how = settings.prompt_weighting
    swatches = text_to_image(need(editors.text2image, "text2image", "texture"), jobs, settings.swatch, "swatch", how)
    swatch_prompts, _ = filled_prompts(jobs, settings.swatch, how)
    details = []
    blended = []
    noises = noise_record(jobs, settings.seeding)
    for swatch, job, swatch_prompt, noise in zip(swatches, jobs, swatch_prompts, noises):
        alpha = draw_alpha(job.item, settings.alpha.low, settings.alpha.high)
        corner = (
            crop_corner(job.item, swatch.size, settings.crop_fraction) if settings.crop_position == "random" else None
        )
        fill = ops.fill_from_swatch(
            swatch, job.square.size, settings.crop_fraction, corner, sharpen=settings.sharpen, upscale=settings.upscale
        )
        blended.append(ops.blend(job.square.image, fill, job.square.mask, alpha, settings.rounding))
        details.append(
            {
                "alpha": alpha,
                "swatch_prompt": swatch_prompt,
                **({"crop_corner": list(corner)} if corner else {}),
                **noise,
            }
        )
    return redraw_object(editors, jobs, blended, settings, "texture", details)


def crop_corner(item: EditItem, swatch_size: tuple[int, int], crop_fraction: float) -> tuple[int, int]:
    """A random top-left corner of the swatch crop, every position equally likely, from the item's own seed
    (the reference draws it from the unseeded global NumPy state, texture_gen.py:334-335)."""
    crop_w, crop_h = ops.crop_size(swatch_size, crop_fraction)
    rng = item_rng(item.seed, "crop")
    return int(rng.integers(0, swatch_size[0] - crop_w + 1)), int(rng.integers(0, swatch_size[1] - crop_h + 1))


TEXTURE = AttributeMethod(
    name="texture",
    settings=TextureSettings,
    edit=edit_texture,
    editors=("text2image", "inpaint", "regenerator"),
    main_step="regenerate",
    costed_steps=(("swatch", "text2image"), ("refine", "inpaint"), ("regenerate", "regenerate")),
    lists="dataset",
    guide=Guide(
        what="the surface material or finish of the object itself; its shape and the background stay unchanged",
        feasible="a material or surface finish that {target} really has",
        infeasible="a material or surface that {target} could never be made of or covered with in reality",
        value="a short material or surface name of 1 to 5 words",
    ),
)
