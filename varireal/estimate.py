"""Device-seconds before anyone has benchmarked the target GPU: estimates from published figures.

`varireal plan` prefers measured rates (benchmarks/rates/<profile>.json, written by
`python -m benchmarks.edit --rates-out`); until a rates file exists it estimates from:
- diffusers' published SDXL timing: 30 denoising steps at 1024 px, batch 1, fp16 + SDPA on an
  A100 take 3.31 s (docs, "Speed up inference"), so one SDXL UNet step with guidance costs 0.110 s;
- every other denoising step scaled from it by its UNet's parameters (ControlNet added to the SDXL
  UNet it steers) and by its pixels against 1024 x 1024; an inpainting step at strength s runs
  int(steps x s) steps, as diffusers does; VAE, text encoders and image I/O are left out;
- the judge: an assumed 0.15 s to read one image and question with LLaVA-1.6-7B in fp16, plus
  25 ms per generated token for a reply of 8 tokens when the answer is generated text (no
  published figure: a guess, and `varireal plan` says so);
- fine-tuning: the reference's own figure, about 8 h per fine-tune on one A100 for Cars'
  78,720 steps of batch 64 (0.366 s per step), unless a rates file has `train_seconds_per_step`.
"""

from __future__ import annotations

from typing import Any

from varireal.attributes.kind import AttributeMethod
from varireal.attributes.step_settings import InpaintStep, RegenerateStep, Text2ImageStep

SDXL_STEP_SECONDS = 3.31 / 30  # A100, 1024 px, batch 1, fp16 + SDPA, guidance on
SDXL_UNET = 2_567_463_684  # parameters (benchmarks.full_size, counted on the meta device)
SD21_UNET = 865_910_724
SDXL_CONTROLNET = 1_251_014_160
JUDGE_READ_SECONDS = 0.15  # assumed: one image + question through LLaVA-1.6-7B, fp16, A100
JUDGE_TOKEN_SECONDS = 0.025  # assumed: one generated token
JUDGE_REPLY_TOKENS = 8  # assumed: a short reply ("Yes, the ...") before the end token
REFERENCE_TRAIN_SECONDS_PER_STEP = 8 * 3600 / 78_720  # "8 h per fine-tune" (Cars, 78,720 steps, batch 64)
SOURCE = (
    "estimated from diffusers' published SDXL timing on an A100 (3.31 s for 30 steps at 1024 px), scaled by "
    "UNet size, pixels and steps x strength; the judge's rate is assumed; no rates file measured on the target GPU"
)


def _step(unet: int, size: int) -> float:
    return SDXL_STEP_SECONDS * (unet / SDXL_UNET) * (size / 1024) ** 2


def _text2image(step: Text2ImageStep) -> float:
    return step.steps * _step(SD21_UNET, step.size)


def _inpaint(step: InpaintStep, size: int) -> float:
    return int(step.steps * step.strength) * _step(SDXL_UNET, size)


def _regenerate(step: RegenerateStep, size: int) -> float:
    return step.steps * _step(SDXL_UNET + SDXL_CONTROLNET, size)


def edit_seconds(method: AttributeMethod, settings: Any, work_size: int) -> float:
    """Seconds of denoising for one candidate of an attribute with these (resolved) settings: its diffusion
    calls, as its module lists them (AttributeMethod.costed_steps)."""
    seconds = {
        "text2image": _text2image,
        "inpaint": lambda step: _inpaint(step, work_size),
        "regenerate": lambda step: _regenerate(step, work_size),
    }
    return sum(seconds[kind](getattr(settings, field)) for field, kind in method.costed_steps)


def judge_seconds(answer_from: str, max_new_tokens: int) -> float:
    """Four questions per candidate; a generated reply of JUDGE_REPLY_TOKENS (at most max_new_tokens)."""
    generated = (
        min(max_new_tokens, JUDGE_REPLY_TOKENS) * JUDGE_TOKEN_SECONDS if answer_from == "generated_text" else 0.0
    )
    return 4 * (JUDGE_READ_SECONDS + generated)
