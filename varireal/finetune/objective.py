"""What one training step minimises and how its lr moves: the weighted loss of real and synthetic
rows, CutMix/MixUp within each kind, and the warm-up + cosine schedule with its floor
(varireal.finetune.train's pure pieces)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from varireal.settings.train import MixParams


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """The lr of 0-based `step`: the reference's cosine_scheduler_iter (Finetune/classify/utils.py:91-108).

    Warm-up: np.linspace(min_lr, lr, warmup_steps), so step 0 runs at min_lr and step
    warmup_steps - 1 at lr; then min_lr + (lr - min_lr)(1 + cos(pi i / (total - warmup))) / 2 for
    the i-th step after the warm-up; min_lr from total_steps on.
    """
    if step >= total_steps:
        return min_lr
    if step < warmup_steps:
        return min_lr + (lr - min_lr) * step / (warmup_steps - 1) if warmup_steps > 1 else min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    """int(fraction x steps), as the reference's int(0.1 * total_iterations) (main.py:144)."""
    return int(warmup_fraction * total_steps)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """`lr_at` as a scheduler: the optimizer's lr is the peak, each step multiplies it by lr_at / peak."""
    peak = optimizer.param_groups[0]["lr"]
    warmup = warmup_steps(total_steps, warmup_fraction)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, total_steps, warmup, peak, min_lr) / peak
    )


def weighted_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    is_real: torch.Tensor,
    lambda_real: float,
    totals: tuple[int, int] | None = None,
    *,
    both_kinds: bool,
) -> torch.Tensor:
    """lambda * CE(real rows) + (1 - lambda) * CE(synthetic rows) when the run trains both kinds; plain CE otherwise.

    A kind absent from the batch adds 0, as in the reference (Finetune/classify/main.py:296-305):
    an all-synthetic batch of a synthetic+real run weighs (1 - lambda) CE.
    targets: class indices (N,) or class probabilities (N, C) after CutMix/MixUp.
    totals: (real, synthetic) rows of the whole step when these rows are one DDP rank's part of
    it; each row is weighted by the step's counts, so the parts' losses add up to the step's.
    """
    real_rows, synthetic_rows = totals or (int(is_real.sum()), int((~is_real).sum()))
    per_row = F.cross_entropy(logits.float(), targets, reduction="none")
    if not both_kinds:
        weights = torch.full_like(per_row, 1.0 / (real_rows + synthetic_rows))
    else:  # max(n, 1): a kind with no row in the step has no row here either, so it adds 0
        weights = torch.where(is_real, lambda_real / max(real_rows, 1), (1.0 - lambda_real) / max(synthetic_rows, 1))
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
