"""The three edit methods, each over a batch of prepared items with the pipelines passed in.

Every pipeline call gets one torch.Generator per item (seeded from the item's seed and the
step's name, on the CPU so GPU and CPU runs draw the same noise), so an item's noise does not
depend on which other items share its batch. The final composite of each method takes the
unchanged part from the ORIGINAL image at its original size (see image_ops.keep_object /
keep_background), so "the object stays the object" holds pixel for pixel.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from varireal.colors import resolve_color
from varireal.edit import image_ops as ops
from varireal.edit.items import EditItem
from varireal.edit.settings import (
    BackgroundSettings,
    Canny,
    ColorSettings,
    InpaintStep,
    MethodSettings,
    PromptWeighting,
    RegenerateStep,
    Text2ImageStep,
    TextureSettings,
)
from varireal.seeding import item_generator, item_rng


@dataclass(frozen=True)
class Editors:
    """The loaded pipelines (loaded once per stage; a method uses the ones it needs)."""

    text2image: Any = None  # StableDiffusionPipeline (SD 2.1)
    inpaint: Any = None  # StableDiffusionXLInpaintPipeline
    regenerator: Any = None  # StableDiffusionXLControlNetPipeline with an IP-Adapter loaded


@dataclass(frozen=True)
class Job:
    item: EditItem
    square: ops.WorkSquare


@dataclass
class Edited:
    image: Image.Image  # source size
    prompt: str  # the method's main prompt (also in details["prompts"])
    negative_prompt: str
    details: dict[str, Any] = field(default_factory=dict)  # drawn values, every prompt: goes to the manifest


def generators(jobs: Sequence[Job], step: str) -> list[torch.Generator]:
    return [item_generator(job.item.seed, step) for job in jobs]


def draw_alpha(item: EditItem, low: float, high: float) -> float:
    """A per-item blend weight in [low, high], drawn from the item's own seed."""
    return float(low + (high - low) * item_rng(item.seed, "alpha").random())


def _need(pipe: Any, role: str, method: str) -> Any:
    if pipe is None:
        raise ValueError(f"the {method} edit needs the {role} pipeline, but Editors.{role} is None")
    return pipe


WEIGHT_MARKUP = re.compile(r"\((?P<text>[^()]+)\)(?P<weight>\d*\.?\d+)")  # `(ruddy)1.3`, the reference's values


def unweighted(value: str) -> str:
    """`(ruddy ticked coat)1.3` -> `ruddy ticked coat`: what CLIP should read when no weighting applies it."""
    return WEIGHT_MARKUP.sub(lambda match: match["text"], value)


def _prompts(jobs: Sequence[Job], step: Any, how: PromptWeighting) -> tuple[list[str], list[str]]:
    """The filled prompt and negative templates: the value as written under compel, its markup removed under none."""
    items = [job.item if how == "compel" else replace(job.item, value=unweighted(job.item.value)) for job in jobs]
    return [item.fill(step.prompt) for item in items], [item.fill(step.negative_prompt) for item in items]


_COMPEL: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _compel(pipe: Any) -> Any:
    """One Compel per pipeline, built as the reference builds it (generator/base.py:309-311, 331-337, 408-415):
    SD 2.1 with its one encoder; SDXL with both, penultimate hidden states, pooled output of the second."""
    if pipe not in _COMPEL:
        from compel import Compel, ReturnedEmbeddingsType

        if getattr(pipe, "text_encoder_2", None) is None:
            _COMPEL[pipe] = Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder)
        else:
            _COMPEL[pipe] = Compel(
                tokenizer=[pipe.tokenizer, pipe.tokenizer_2],
                text_encoder=[pipe.text_encoder, pipe.text_encoder_2],
                returned_embeddings_type=ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED,
                requires_pooled=[False, True],
            )
    return _COMPEL[pipe]


def prompt_inputs(pipe: Any, prompts: list[str], negatives: list[str], how: PromptWeighting) -> dict[str, Any]:
    """The pipeline's prompt arguments. none: the texts. compel: the compel embeddings of the prompts, and the
    negative texts only if a template wrote one (the reference passes none except the texture swatch's; with none,
    SDXL zeroes the negative embeddings and SD 2.1 encodes "")."""
    if how == "none":
        return {"prompt": prompts, "negative_prompt": negatives}
    negative = negatives if any(negatives) else None
    with torch.no_grad():
        encoded = _compel(pipe)(prompts)
    if isinstance(encoded, tuple):  # SDXL: (embeddings, pooled)
        return {"prompt_embeds": encoded[0], "pooled_prompt_embeds": encoded[1], "negative_prompt": negative}
    return {"prompt_embeds": encoded, "negative_prompt": negative}


def use_scheduler(pipe: Any, name: str) -> None:
    """Give the pipeline the step's scheduler: the repo's own (kept aside on first use) or DPM-Solver++ made from its config."""
    from diffusers import DPMSolverMultistepScheduler

    if name == "default" and not hasattr(pipe, "varireal_repo_scheduler"):
        return  # never swapped: the repo's own is in place
    if not hasattr(pipe, "varireal_repo_scheduler"):
        pipe.varireal_repo_scheduler = pipe.scheduler
    repo = pipe.varireal_repo_scheduler
    pipe.scheduler = repo if name == "default" else DPMSolverMultistepScheduler.from_config(repo.config)


def text_to_image(
    pipe: Any, jobs: Sequence[Job], step: Text2ImageStep, name: str, how: PromptWeighting
) -> list[Image.Image]:
    prompts, negatives = _prompts(jobs, step, how)
    use_scheduler(pipe, step.scheduler)
    return pipe(
        **prompt_inputs(pipe, prompts, negatives, how),
        height=step.size,
        width=step.size,
        num_inference_steps=step.steps,
        guidance_scale=step.guidance,
        generator=generators(jobs, name),
    ).images


def inpaint(
    pipe: Any,
    jobs: Sequence[Job],
    images: Sequence[Image.Image],
    masks: Sequence[Image.Image],
    step: InpaintStep,
    name: str,
    how: PromptWeighting,
) -> list[Image.Image]:
    prompts, negatives = _prompts(jobs, step, how)
    size = jobs[0].square.size
    return pipe(
        **prompt_inputs(pipe, prompts, negatives, how),
        image=list(images),
        mask_image=list(masks),
        height=size,
        width=size,
        strength=step.strength,
        num_inference_steps=step.steps,
        guidance_scale=step.guidance,
        generator=generators(jobs, name),
    ).images


def ip_adapter_embeds(pipe: Any, images: Sequence[Image.Image], guidance: float) -> list[torch.Tensor]:
    """Per-item IP-Adapter embeddings, one row per item (negatives first under classifier-free guidance).

    `ip_adapter_image=[a, b]` means two images for EVERY prompt (or two adapters), so each
    item's image is encoded alone and the results are stacked in the pipeline's layout.
    """
    guided = guidance > 1
    per_item = [pipe.prepare_ip_adapter_image_embeds([image], None, pipe.device, 1, guided)[0] for image in images]
    if not guided:
        return [torch.cat(per_item)]
    negatives = [embeds.chunk(2)[0] for embeds in per_item]
    positives = [embeds.chunk(2)[1] for embeds in per_item]
    return [torch.cat(negatives + positives)]


@contextmanager
def per_item_ip_adapter(pipe: Any, embeds: list[torch.Tensor]) -> Iterator[None]:
    """Make the pipeline use `embeds` as they are: one IP-Adapter image per item of the batch.

    diffusers 0.42 repeats `ip_adapter_image_embeds` batch_size times (one reference image for
    the whole batch), which mixes the references of a batch (huggingface/diffusers#9813, open).
    For the length of one call the instance's preparation step returns the per-item stack.
    """
    pipe.prepare_ip_adapter_image_embeds = lambda *args, **kwargs: [e.to(pipe.device) for e in embeds]
    try:
        yield
    finally:
        del pipe.prepare_ip_adapter_image_embeds  # back to the class's method


def edges(square: ops.WorkSquare, canny: Canny) -> Image.Image:
    """The ControlNet's canny map of the ORIGINAL object: on white over RGB (the reference) or the whole square."""
    if canny.source == "object_on_white":
        image, rgb = ops.object_on_white(square.image, square.mask), True
    else:
        image, rgb = square.image, False
    low = ops.median_low_threshold(image) if canny.low == "auto" else canny.low
    return ops.canny(image, low, canny.high, rgb=rgb)


def regenerate(
    pipe: Any, jobs: Sequence[Job], edited: Sequence[Image.Image], step: RegenerateStep, how: PromptWeighting
) -> list[Image.Image]:
    """Redraw the scene from the ORIGINAL object's canny edges, looking at the edited object (IP-Adapter)."""
    prompts, negatives = _prompts(jobs, step, how)
    size = jobs[0].square.size
    maps = [edges(job.square, step.canny) for job in jobs]
    references = [ops.object_only(image, job.square.mask, step.ip_adapter_fill) for image, job in zip(edited, jobs)]
    embeds = ip_adapter_embeds(pipe, references, step.guidance)
    pipe.set_ip_adapter_scale(step.ip_adapter_scale)
    with per_item_ip_adapter(pipe, embeds):
        return pipe(
            **prompt_inputs(pipe, prompts, negatives, how),
            image=maps,
            ip_adapter_image_embeds=embeds,
            controlnet_conditioning_scale=step.controlnet_scale,
            height=size,
            width=size,
            num_inference_steps=step.steps,
            guidance_scale=step.guidance,
            generator=generators(jobs, "regenerate"),
        ).images


def edit_background(editors: Editors, jobs: Sequence[Job], settings: BackgroundSettings) -> list[Edited]:
    """New scene without the object -> object pasted through a dilated mask -> inpaint the blurred background."""
    how = settings.prompt_weighting
    scenes = text_to_image(_need(editors.text2image, "text2image", "background"), jobs, settings.scene, "scene", how)
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
        _need(editors.inpaint, "inpaint", "background"), jobs, pasted, masks, settings.harmonize, "harmonize", how
    )
    scene_prompts, scene_negatives = _prompts(jobs, settings.scene, how)
    harmonize_prompts, _ = _prompts(jobs, settings.harmonize, how)
    return [
        Edited(
            ops.keep_object(job.square, image),
            scene_prompts[i],
            scene_negatives[i],
            {"prompts": {"scene": scene_prompts[i], "harmonize": harmonize_prompts[i]}},
        )
        for i, (job, image) in enumerate(zip(jobs, harmonized))
    ]


def edit_color(editors: Editors, jobs: Sequence[Job], settings: ColorSettings) -> list[Edited]:
    """Tint inside the mask -> inpaint-refine inside the mask -> ControlNet + IP-Adapter -> original background."""
    details = []
    tinted = []
    for job in jobs:
        # the prompts stage resolved each colour value (reference table, CSS4, XKCD); a hand-made item may not carry it
        rgb, rule = (job.item.rgb, job.item.rgb_source) if job.item.rgb else resolve_color(job.item.value)
        alpha = draw_alpha(job.item, settings.alpha.low, settings.alpha.high)
        tinted.append(ops.tint(job.square.image, job.square.mask, rgb, alpha))
        details.append({"tint_rgb": list(rgb), "tint_rule": rule, "alpha": alpha})
    how = settings.prompt_weighting
    refined = inpaint(
        _need(editors.inpaint, "inpaint", "color"),
        jobs,
        tinted,
        [ops.mask_image(job.square.mask) for job in jobs],
        settings.refine,
        "refine",
        how,
    )
    regenerated = regenerate(
        _need(editors.regenerator, "regenerator", "color"), jobs, refined, settings.regenerate, how
    )
    return _object_results(jobs, regenerated, settings.refine, settings.regenerate, details, how)


def edit_texture(editors: Editors, jobs: Sequence[Job], settings: TextureSettings) -> list[Edited]:
    """Texture swatch -> crop/upscale -> blend inside the mask -> inpaint-refine -> ControlNet + IP-Adapter."""
    how = settings.prompt_weighting
    swatches = text_to_image(_need(editors.text2image, "text2image", "texture"), jobs, settings.swatch, "swatch", how)
    swatch_prompts, _ = _prompts(jobs, settings.swatch, how)
    details = []
    blended = []
    for swatch, job, swatch_prompt in zip(swatches, jobs, swatch_prompts):
        alpha = draw_alpha(job.item, settings.alpha.low, settings.alpha.high)
        corner = (
            crop_corner(job.item, swatch.size, settings.crop_fraction) if settings.crop_position == "random" else None
        )
        fill = ops.fill_from_swatch(swatch, job.square.size, settings.crop_fraction, corner, sharpen=settings.sharpen)
        blended.append(ops.blend(job.square.image, fill, job.square.mask, alpha))
        details.append(
            {"alpha": alpha, "swatch_prompt": swatch_prompt, **({"crop_corner": list(corner)} if corner else {})}
        )
    refined = inpaint(
        _need(editors.inpaint, "inpaint", "texture"),
        jobs,
        blended,
        [ops.mask_image(job.square.mask) for job in jobs],
        settings.refine,
        "refine",
        how,
    )
    regenerated = regenerate(
        _need(editors.regenerator, "regenerator", "texture"), jobs, refined, settings.regenerate, how
    )
    return _object_results(jobs, regenerated, settings.refine, settings.regenerate, details, how)


def crop_corner(item: EditItem, swatch_size: tuple[int, int], crop_fraction: float) -> tuple[int, int]:
    """A random top-left corner of the swatch crop, every position equally likely, from the item's own seed
    (the reference draws it from the unseeded global NumPy state, texture_gen.py:334-335)."""
    crop_w, crop_h = ops.crop_size(swatch_size, crop_fraction)
    rng = item_rng(item.seed, "crop")
    return int(rng.integers(0, swatch_size[0] - crop_w + 1)), int(rng.integers(0, swatch_size[1] - crop_h + 1))


def _object_results(
    jobs: Sequence[Job],
    images: Sequence[Image.Image],
    refine: InpaintStep,
    regen: RegenerateStep,
    details: list[dict],
    how: PromptWeighting,
) -> list[Edited]:
    refine_prompts, _ = _prompts(jobs, refine, how)
    prompts, negatives = _prompts(jobs, regen, how)
    results = []
    for i, (job, image) in enumerate(zip(jobs, images)):
        extra = dict(details[i])
        swatch = extra.pop("swatch_prompt", None)
        steps = {"swatch": swatch} if swatch is not None else {}
        extra["prompts"] = {**steps, "refine": refine_prompts[i], "regenerate": prompts[i]}
        results.append(Edited(ops.keep_background(job.square, image), prompts[i], negatives[i], extra))
    return results


METHODS: dict[str, Callable[[Editors, Sequence[Job], Any], list[Edited]]] = {
    "background": edit_background,
    "color": edit_color,
    "texture": edit_texture,
}

# Which model roles each method's output depends on (for resume keys and the manifest).
METHOD_ROLES: dict[str, tuple[str, ...]] = {
    "background": ("text2image", "inpaint"),
    "color": ("inpaint", "regenerator"),
    "texture": ("text2image", "inpaint", "regenerator"),
}


def edit_batch(editors: Editors, attribute: str, jobs: Sequence[Job], settings: MethodSettings) -> list[Edited]:
    if attribute not in METHODS:
        raise ValueError(f"attribute={attribute!r}: expected one of {', '.join(METHODS)}")
    return METHODS[attribute](editors, jobs, settings) if jobs else []
