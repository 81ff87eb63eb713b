"""What one fine-tuning run is made of: the model, its loaders, optimizer, schedule and scaler (`prepare`),
and predictions with the model in eval mode (`predict`, also what evaluate scores with).

varireal.finetune.train's loop takes a `Run` as it is; benchmarks.finetune times its steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from varireal.devices import resolve_device
from varireal.finetune.augment import eval_transform, train_transform
from varireal.finetune.batches import StepSampler, step_sampler, train_loader
from varireal.finetune.data import ImageRows, eval_loader, training_jpeg_quality
from varireal.finetune.lora import trainable_parameters
from varireal.finetune.model import ClipClassifier, build_classifier
from varireal.finetune.objective import make_mixer, warmup_cosine
from varireal.launch import SINGLE, Ranks
from varireal.settings.train import TrainParams

# --- predictions ---------------------------------------------------------------------------------


@torch.inference_mode()
def predict(model: ClipClassifier, loader: DataLoader, device: str, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits float32 (N, C), labels (N,)) on CPU, in loader order, with the model in eval mode."""
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    for images, labels, _ in loader:
        with autocast(device, amp):
            logits = model(images.to(device, non_blocking=True))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels)
    model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)


def autocast(device: str, amp: bool) -> torch.autocast:
    """fp16 autocast on CUDA when amp is on; a disabled context on CPU (fp32, the reference)."""
    cuda = device.startswith("cuda")
    return torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.float16, enabled=amp and cuda)


# --- setting up a run ----------------------------------------------------------------------------


@dataclass
class Run:
    """Everything `fit` needs, built by `prepare` (also used by benchmarks.finetune)."""

    settings: TrainParams
    device: str
    model: ClipClassifier
    net: torch.nn.Module  # what trains: the model, or its DDP wrapper when several ranks share the steps
    ranks: Ranks
    sampler: StepSampler
    loader: DataLoader
    val_loader: DataLoader | None  # None: no val split (Aircraft or Cars on the paper's images), or not rank 0
    test_loader: DataLoader | None  # protocol paper only, rank 0 only: the test split the paper chose its weights on
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    mixer: Callable | None


def prepare(
    settings: TrainParams,
    selection: pd.DataFrame,
    val: pd.DataFrame,
    *,
    model_dir: str | Path,
    class_names: list[str],
    prefix: str,
    ranks: Ranks = SINGLE,
    test: pd.DataFrame | None = None,
) -> Run:
    device = resolve_device(settings.device)
    model = build_classifier(
        model_dir,
        class_names,
        settings.template,
        prefix,
        settings.lora,
        device,
        seed=settings.seed,
        activation=settings.activation,
    )
    size, mean, std = model.image_size, model.mean, model.std
    interpolation = str(model.preprocess_cfg.get("interpolation", "bicubic"))
    cuda = device.startswith("cuda")
    train_rows = ImageRows(
        selection,
        train_transform(size, mean, std, settings.augment, interpolation),
        seed=settings.seed,
        cache=settings.cache_decoded,
        jpeg_quality=training_jpeg_quality(settings.jpeg_quality, settings.data),
    )
    val_rows = ImageRows(val, eval_transform(size, mean, std, interpolation), cache=settings.cache_decoded)
    sampler = step_sampler(train_rows.is_real, settings, settings.seed)
    sampler.part(ranks.rank, ranks.world)
    # buffers are not trained: broadcasting them would make rank 0's val passes wait for the others
    net = model if ranks.world == 1 else DistributedDataParallel(model, broadcast_buffers=False)
    optimizer = torch.optim.AdamW(
        [p for _, p in trainable_parameters(model)], lr=settings.lr, weight_decay=settings.weight_decay
    )
    return Run(
        settings=settings,
        device=device,
        model=model,
        net=net,
        ranks=ranks,
        sampler=sampler,
        loader=train_loader(train_rows, sampler, settings.num_workers, settings.seed, pin_memory=cuda),
        val_loader=None
        if val.empty or not ranks.main
        else eval_loader(val_rows, settings.eval_batch_size, settings.num_workers, pin_memory=cuda),
        test_loader=None
        if test is None or not ranks.main
        else eval_loader(
            ImageRows(test, val_rows.transform, cache=settings.cache_decoded),
            settings.eval_batch_size,
            settings.num_workers,
            pin_memory=cuda,
        ),
        optimizer=optimizer,
        scheduler=warmup_cosine(optimizer, len(sampler), settings.warmup_fraction, settings.min_lr),
        scaler=torch.amp.GradScaler("cuda", enabled=settings.amp and cuda),
        mixer=make_mixer(settings.cutmix_mixup, len(class_names)),
    )
