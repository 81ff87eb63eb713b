"""Color: the object's colour changes, its shape and the background do not.

A tint inside the mask (`orig * (1 - a) + rgb * a`, with the RGB the prompts stage resolved for the
value), SDXL inpainting inside the mask to refine it, then the object redrawn by a canny ControlNet
SDXL looking at the tinted object through an IP-Adapter, composited onto the ORIGINAL background.
Values: one list per class ("ruddy" for an Abyssinian against "neon pink").
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from varireal.attributes import image_ops as ops
from varireal.attributes.kind import AttributeMethod, Guide
from varireal.attributes.pipelines import Editors
from varireal.attributes.step_settings import AlphaRange, InpaintStep, MethodBlock, RegenerateStep
from varireal.attributes.steps import (
    Edited,
    Job,
    draw_alpha,
    noise_record,
    redraw_object,
)
from varireal.colors import resolve_color
from varireal.vocabulary import Feasibility


class ColorSettings(MethodBlock):
    feasibility: dict[Feasibility, ColorSettings] = Field(default_factory=dict)
    alpha: AlphaRange  # tint weight: orig * (1 - a) + rgb * a
    refine: InpaintStep  # SDXL inpainting inside the mask, low-to-mid strength
    regenerate: RegenerateStep


def edit_color(editors: Editors, jobs: Sequence[Job], settings: ColorSettings) -> list[Edited]:
    """Tint inside the mask -> inpaint-refine inside the mask -> ControlNet + IP-Adapter -> original background."""
    details = []
    tinted = []
    for job, noise in zip(jobs, noise_record(jobs, settings.seeding)):
        # the prompts stage resolved each colour value (reference table, CSS4, XKCD); a hand-made item may not carry it
        rgb, rule = (job.item.rgb, job.item.rgb_source) if job.item.rgb else resolve_color(job.item.value)
        alpha = draw_alpha(job.item, settings.alpha.low, settings.alpha.high)
        tinted.append(ops.tint(job.square.image, job.square.mask, rgb, alpha, settings.rounding))
        details.append({"tint_rgb": list(rgb), "tint_rule": rule, "alpha": alpha, **noise})
    return redraw_object(editors, jobs, tinted, settings, "color", details)


COLOR = AttributeMethod(
    name="color",
    settings=ColorSettings,
    edit=edit_color,
    editors=("inpaint", "regenerator"),
    main_step="regenerate",
    costed_steps=(("refine", "inpaint"), ("regenerate", "regenerate")),
    lists="class",
    guide=Guide(
        what="the color of the object itself; its shape, texture and the background stay unchanged",
        feasible="a color that {target} can have",
        infeasible="a color that {target} never has in reality",
        value="a short color name of 1 to 4 words",
    ),
    colors=True,
)
