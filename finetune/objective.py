"""What one training step minimises and how its lr moves: the weighted loss of real and synthetic
rows, CutMix/MixUp within each kind, and the warm-up + cosine schedule (finetune.train's pure pieces)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from finetune.settings import MixParams


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak lr at 0-based `step`: (step+1)/warmup during warm-up, then cosine to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup_steps = round(warmup_fraction * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup_steps))


def weighted_loss(
    logits: torch.Tensor, targets: torch.Tensor, is_real: torch.Tensor, lambda_real: float,
    totals: tuple[int, int] | None = None,
) -> torch.Tensor:
    """lambda * CE(real rows) + (1 - lambda) * CE(synthetic rows); plain CE when only one kind is present.

    targets: class indices (N,) or class probabilities (N, C) after CutMix/MixUp.
    totals: (real, synthetic) rows of the whole step when these rows are one DDP rank's part of
    it; each row is weighted by the step's counts, so the parts' losses add up to the step's.
    """
    real_rows, synthetic_rows = totals or (int(is_real.sum()), int((~is_real).sum()))
    per_row = F.cross_entropy(logits.float(), targets, reduction="none")
    if real_rows == 0 or synthetic_rows == 0:
        weights = torch.full_like(per_row, 1.0 / (real_rows + synthetic_rows))
    else:
        weights = torch.where(is_real, lambda_real / real_rows, (1.0 - lambda_real) / synthetic_rows)
    return (per_row * weights).sum()


def make_mixer(mix: MixParams, num_classes: int) -> Callable | None:
    """A torchvision CutMix / MixUp / either-at-random over a batch, or None when off."""
    if mix.mode == "none":
        return None
    cutmix = v2.CutMix(num_classes=num_classes, alpha=mix.alpha)
    mixup = v2.MixUp(num_classes=num_classes, alpha=mix.alpha)
    return {"cutmix": cutmix, "mixup": mixup, "cutmix_or_mixup": v2.RandomChoice([cutmix, mixup])}[mix.mode]


def mix_by_kind(images: torch.Tensor, labels: torch.Tensor, is_real: torch.Tensor, mixer: Callable, num_classes: int):
    """Mix real with real and synthetic with synthetic only, so each loss term keeps its kind."""
    images = images.clone()
    targets = F.one_hot(labels, num_classes).float()
    for flag in (True, False):
        part = is_real == flag
        if part.any():
            images[part], targets[part] = mixer(images[part], labels[part])
    return images, targets
