"""Background: a new scene around the unchanged object.

A text-to-image scene without the object (SD 2.1), the object pasted over it through a dilated mask,
SDXL inpainting of everything but the object to harmonize the two, then the ORIGINAL object pixels
composited back exactly. Values: one list per dataset ("suburban backyard" against "deep sea").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from PIL import Image
from pydantic import Field

from varireal.attributes import image_ops as ops
from varireal.attributes.kind import AttributeMethod, Guide
from varireal.attributes.pipelines import Editors
from varireal.attributes.step_settings import InpaintStep, MethodBlock, Text2ImageStep
from varireal.attributes.steps import (
    Edited,
    Job,
    filled_prompts,
    inpaint,
    need,
    noise_record,
    shared_noise,
    text_to_image,
)
from varireal.schema import Strict
from varireal.vocabulary import Feasibility


class Dilation(Strict):
    """How far the object mask grows before the original is pasted over the new scene."""

    kernel: Literal["square", "ellipse"] = Field(
        description="square: cv2.dilate with np.ones((size, size)), the reference's; ellipse: corners grow round"
    )
    size: int = Field(ge=0, description="kernel side (work-square px); 0 or 1 keeps the mask as it is")


class BackgroundSettings(MethodBlock):
    feasibility: dict[Feasibility, BackgroundSettings] = Field(default_factory=dict)
    scene: Text2ImageStep  # the background, without the object
    dilation: Dilation
    blur_px: float = Field(ge=0, description="Gaussian blur radius (work-square px) of the harmonizing mask")
    harmonize: InpaintStep  # SDXL inpainting over the blurred background mask


def edit_background(editors: Editors, jobs: Sequence[Job], settings: BackgroundSettings) -> list[Edited]:
    """New scene without the object -> object pasted through a dilated mask -> inpaint the blurred background."""
    how = settings.prompt_weighting
    scenes = text_to_image(need(editors.text2image, "text2image", "background"), jobs, settings.scene, "scene", how)
    pasted = [
        ops.paste(
            scene.convert("RGB").resize((job.square.size,) * 2, Image.Resampling.BICUBIC),
            job.square.image,
            ops.dilate(job.square.mask, settings.dilation.size, settings.dilation.kernel),
        )
        for scene, job in zip(scenes, jobs)
    ]
    masks = [ops.soft_mask(~job.square.mask, settings.blur_px) for job in jobs]
    harmonized = inpaint(
        need(editors.inpaint, "inpaint", "background"),
        jobs,
        pasted,
        masks,
        settings.harmonize,
        "harmonize",
        how,
        noise=shared_noise(jobs, settings.seeding),
        watermark=settings.watermark,
        rounding=settings.rounding,
    )
    scene_prompts, scene_negatives = filled_prompts(jobs, settings.scene, how)
    harmonize_prompts, _ = filled_prompts(jobs, settings.harmonize, how)
    noise = noise_record(jobs, settings.seeding)
    return [
        Edited(
            ops.keep_object(job.square, image),
            scene_prompts[i],
            scene_negatives[i],
            {"prompts": {"scene": scene_prompts[i], "harmonize": harmonize_prompts[i]}, **noise[i]},
        )
        for i, (job, image) in enumerate(zip(jobs, harmonized))
    ]


BACKGROUND = AttributeMethod(
    name="background",
    settings=BackgroundSettings,
    edit=edit_background,
    editors=("text2image", "inpaint"),
    main_step="scene",
    costed_steps=(("scene", "text2image"), ("harmonize", "inpaint")),
    lists="dataset",
    guide=Guide(
        what="the scene around and behind the object; the object itself stays unchanged",
        feasible="a setting where {target} could really be found or photographed",
        infeasible="a setting where {target} could never be in the real world (physically impossible or absurd "
        "for it), that can still be pictured as a scene",
        value="a short scene name of 1 to 5 words",
    ),
)
