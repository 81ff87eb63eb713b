"""The diffusion steps the edit methods are made of (text-to-image, inpainting, ControlNet + IP-Adapter
regeneration, prompt weighting), the pipelines they run on, and how those are loaded from the lock.

Each attribute (varireal.attributes.<name>) chains some of these steps over a batch of prepared
items with the pipelines passed in. Every pipeline call gets one torch.Generator per item (seeded
from the item's seed and the step's name, on the CPU so GPU and CPU runs draw the same noise), so an
item's noise does not depend on which other items share its batch; under `seeding: reference` a
method's SDXL calls share one generator per item instead, seeded 42 or 3407 as the reference's were.
SDXL outputs come back as floats and become 8-bit by the method's `rounding`. A method's final composite takes
the unchanged part from the ORIGINAL image at its original size (image_ops.keep_object /
keep_background), so "the object stays the object" holds pixel for pixel.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import torch
from PIL import Image

from varireal.attributes import image_ops as ops
from varireal.attributes.item import EditItem
from varireal.attributes.step_settings import (
    Canny,
    InpaintStep,
    PromptWeighting,
    RegenerateStep,
    Seeding,
    Text2ImageStep,
)
from varireal.seeding import item_generator, item_rng

if TYPE_CHECKING:  # the methods pass their editors in; loading them is not this module's code
    from varireal.attributes.pipelines import Editors


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


REFERENCE_SEEDS = (42, 3407)  # the reference's random.choice([42, 3407]) (generator/base.py:257-258)


def reference_seed(item: EditItem) -> int:
    """42 or 3407, drawn from the item's own seed where the reference drew it from Python's global `random`."""
    return REFERENCE_SEEDS[int(item_rng(item.seed, "reference seed").integers(len(REFERENCE_SEEDS)))]


def shared_noise(jobs: Sequence[Job], seeding: Seeding) -> list[torch.Generator] | None:
    """Under `reference` seeding, one CPU generator per item for all of a method's SDXL calls (passed on from
    call to call, so each continues the stream of the one before); None under `per_step`."""
    if seeding == "per_step":
        return None
    return [torch.Generator(device="cpu").manual_seed(reference_seed(job.item)) for job in jobs]


def noise_record(jobs: Sequence[Job], seeding: Seeding) -> list[dict[str, int]]:
    """What the manifest records of the noise: the reference's seed per item, or nothing (per_step)."""
    return [{"reference_seed": reference_seed(job.item)} if seeding == "reference" else {} for job in jobs]


@contextmanager
def watermarked(pipe: Any, on: bool, size: int) -> Iterator[None]:
    """diffusers' invisible watermark on one call's outputs when `on` (the reference's SDXL pipelines added it:
    its environment installed invisible-watermark, and diffusers then watermarks by default). diffusers leaves
    images under 256 px as they are, so at that size no package is needed."""
    if not on or size < 256:
        yield
        return
    from diffusers.utils import is_invisible_watermark_available

    if not is_invisible_watermark_available():  # diffusers' watermarker would fail with a NameError
        raise ValueError(
            "watermark: true (edit.<profile>.methods.<attribute>.watermark in method.yaml) needs the "
            "invisible-watermark package (module imwatermark), which is not installed; install it "
            "(pip install invisible-watermark) or set watermark: false"
        )
    from diffusers.pipelines.stable_diffusion_xl.watermark import StableDiffusionXLWatermarker

    marker = StableDiffusionXLWatermarker()
    saved = pipe.watermark
    pipe.watermark = marker
    try:
        yield
    finally:
        pipe.watermark = saved


def draw_alpha(item: EditItem, low: float, high: float) -> float:
    """A per-item blend weight in [low, high], drawn from the item's own seed."""
    return float(low + (high - low) * item_rng(item.seed, "alpha").random())


def need(pipe: Any, role: str, method: str) -> Any:
    if pipe is None:
        raise ValueError(f"the {method} edit needs the {role} pipeline, but Editors.{role} is None")
    return pipe


WEIGHT_MARKUP = re.compile(r"\((?P<text>[^()]+)\)(?P<weight>\d*\.?\d+)")  # `(ruddy)1.3`, the reference's values


def unweighted(value: str) -> str:
    """`(ruddy ticked coat)1.3` -> `ruddy ticked coat`: what CLIP should read when no weighting applies it."""
    return WEIGHT_MARKUP.sub(lambda match: match["text"], value)


def filled_prompts(jobs: Sequence[Job], step: Any, how: PromptWeighting) -> tuple[list[str], list[str]]:
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
    prompts, negatives = filled_prompts(jobs, step, how)
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
    *,
    noise: list[torch.Generator] | None = None,
    watermark: bool = False,
    rounding: ops.Rounding = "round",
) -> list[Image.Image]:
    """noise: the generators to draw from (shared_noise), else one per item for this step; rounding: how the
    output's floats become 8-bit pixels (ops.pipeline_images)."""
    prompts, negatives = filled_prompts(jobs, step, how)
    size = jobs[0].square.size
    with watermarked(pipe, watermark, size):
        pixels = pipe(
            **prompt_inputs(pipe, prompts, negatives, how),
            image=list(images),
            mask_image=list(masks),
            height=size,
            width=size,
            strength=step.strength,
            num_inference_steps=step.steps,
            guidance_scale=step.guidance,
            generator=noise if noise is not None else generators(jobs, name),
            output_type="np",
        ).images
    return ops.pipeline_images(pixels, rounding)


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
    pipe: Any,
    jobs: Sequence[Job],
    edited: Sequence[Image.Image],
    step: RegenerateStep,
    how: PromptWeighting,
    *,
    noise: list[torch.Generator] | None = None,
    watermark: bool = False,
    rounding: ops.Rounding = "round",
) -> list[Image.Image]:
    """Redraw the scene from the ORIGINAL object's canny edges, looking at the edited object (IP-Adapter)."""
    prompts, negatives = filled_prompts(jobs, step, how)
    size = jobs[0].square.size
    maps = [edges(job.square, step.canny) for job in jobs]
    references = [ops.object_only(image, job.square.mask, step.ip_adapter_fill) for image, job in zip(edited, jobs)]
    embeds = ip_adapter_embeds(pipe, references, step.guidance)
    pipe.set_ip_adapter_scale(step.ip_adapter_scale)
    with per_item_ip_adapter(pipe, embeds), watermarked(pipe, watermark, size):
        pixels = pipe(
            **prompt_inputs(pipe, prompts, negatives, how),
            image=maps,
            ip_adapter_image_embeds=embeds,
            controlnet_conditioning_scale=step.controlnet_scale,
            height=size,
            width=size,
            num_inference_steps=step.steps,
            guidance_scale=step.guidance,
            generator=noise if noise is not None else generators(jobs, "regenerate"),
            output_type="np",
        ).images
    return ops.pipeline_images(pixels, rounding)


def object_results(
    jobs: Sequence[Job],
    images: Sequence[Image.Image],
    refine: InpaintStep,
    regen: RegenerateStep,
    details: list[dict],
    how: PromptWeighting,
) -> list[Edited]:
    refine_prompts, _ = filled_prompts(jobs, refine, how)
    prompts, negatives = filled_prompts(jobs, regen, how)
    results = []
    for i, (job, image) in enumerate(zip(jobs, images)):
        extra = dict(details[i])
        swatch = extra.pop("swatch_prompt", None)
        steps = {"swatch": swatch} if swatch is not None else {}
        extra["prompts"] = {**steps, "refine": refine_prompts[i], "regenerate": prompts[i]}
        results.append(Edited(ops.keep_background(job.square, image), prompts[i], negatives[i], extra))
    return results


class RedrawSettings(Protocol):
    """What the object methods (color, texture) share: a refine step, a regenerate step and how both run."""

    refine: InpaintStep
    regenerate: RegenerateStep
    prompt_weighting: PromptWeighting
    seeding: Seeding
    watermark: bool
    rounding: ops.Rounding


def redraw_object(
    editors: Editors,
    jobs: Sequence[Job],
    changed: Sequence[Image.Image],
    settings: RedrawSettings,
    method: str,
    details: list[dict],
) -> list[Edited]:
    """The object methods' shared tail: SDXL inpainting refines the changed object inside the mask, a canny
    ControlNet SDXL looking at it through an IP-Adapter redraws it, and the original background comes back."""
    how = settings.prompt_weighting
    noise = shared_noise(jobs, settings.seeding)  # one stream through both SDXL calls under `reference`
    refined = inpaint(
        need(editors.inpaint, "inpaint", method),
        jobs,
        changed,
        [ops.mask_image(job.square.mask) for job in jobs],
        settings.refine,
        "refine",
        how,
        noise=noise,
        watermark=settings.watermark,
        rounding=settings.rounding,
    )
    regenerated = regenerate(
        need(editors.regenerator, "regenerator", method),
        jobs,
        refined,
        settings.regenerate,
        how,
        noise=noise,
        watermark=settings.watermark,
        rounding=settings.rounding,
    )
    return object_results(jobs, regenerated, settings.refine, settings.regenerate, details, how)
