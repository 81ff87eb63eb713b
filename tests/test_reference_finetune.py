"""Fine-tuning beside the reference's own code: the lr schedule, the training loop's loss mixing, lr and
checkpoint choice, and the train and eval transforms, on the same inputs (no CLIP: a linear stand-in).

The reference's `main` and `train_one_epoch` (Finetune/classify/main.py) run here as written, on the CPU:
their data loaders, model, `eval` and `save_model` are stand-ins that record what the loop asks of them.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
import torchvision as tv
from PIL import Image, ImageFilter, ImageOps
from pipeline_repo import REPO
from reference_code import load
from torch import nn
from torchvision.transforms import v2

from varireal.finetune.augment import eval_transform, train_transform
from varireal.finetune.kept import Evaluation
from varireal.finetune.objective import lr_at, warmup_cosine, warmup_steps, weighted_loss
from varireal.models.clip import OPENAI_MEAN, OPENAI_STD
from varireal.settings.whole import load_all_params

pytestmark = pytest.mark.reference


def paper_train(dataset: str):
    return load_all_params(REPO / "params.yaml", ["profile=paper"]).train.pick("paper", dataset)


def reference_utils() -> dict:
    import datetime
    import time
    from collections import defaultdict, deque

    import torch.distributed as dist

    namespace = {"np": np, "torch": torch, "dist": dist, "time": time, "datetime": datetime}
    namespace.update(defaultdict=defaultdict, deque=deque)
    return load("Finetune/classify/utils.py", ["cosine_scheduler_iter", "MetricLogger", "SmoothedValue"], namespace)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("dataset", ["stanford_cars", "oxford_pets", "fgvc_aircraft"])
def test_the_lr_schedule_is_the_references_at_every_step(dataset):
    train = paper_train(dataset)
    total, warmup = train.steps, warmup_steps(train.steps, train.warmup_fraction)
    assert warmup == int(0.1 * total)  # main.py:144
    schedule = reference_utils()["cosine_scheduler_iter"](train.lr, train.min_lr, total, warmup, train.min_lr)
    ours = np.array([lr_at(step, total, warmup, train.lr, train.min_lr) for step in range(total)])
    assert np.abs(ours - schedule).max() < 1e-15
    # the scheduler the loop steps gives the same lr before each optimizer step
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=train.lr)
    scheduler = warmup_cosine(optimizer, total, train.warmup_fraction, train.min_lr)
    applied = []
    for _ in range(total):
        applied.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert np.abs(np.array(applied) - schedule).max() < 1e-15


# --- the training loop ---------------------------------------------------------------------------------

CLASSES = 6


class _Model(nn.Module):
    """The reference's CLIP wrapper's place: a linear classifier that records its logits and the lr it ran at."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 4 * 4, CLASSES)
        self.logits: list[torch.Tensor] = []
        self.lrs: list[float] = []
        self.optimizer: torch.optim.Optimizer | None = None

    def cuda(self, *args, **kwargs) -> _Model:
        return self

    def learnable_params(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def forward(self, image: torch.Tensor, **kwargs) -> torch.Tensor:
        logits = self.head(image.float().flatten(1))
        self.logits.append(logits.detach().clone())
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        return logits


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(image, label, is_real) batches of 4, mixed, all synthetic or all real, as a pool's batches come."""
    generator = torch.Generator().manual_seed(0)
    kinds = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]]
    return [
        (
            torch.randn(4, 3, 4, 4, generator=generator),
            torch.randint(0, CLASSES, (4,), generator=generator),
            torch.tensor(kinds[i % len(kinds)]),
        )
        for i in range(count)
    ]


def run_reference_main(tmp_path, monkeypatch, *, steps: int, eval_every: int, batches: int, scores: list[float]):
    """The reference's main() over `batches` per pass; its evaluations return `scores` in turn."""
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # the GPU's place: the CPU
    record: dict[str, list] = {"evals": [], "saves": [], "losses": []}
    model = _Model()
    loader = _batches(batches)

    class _Torch(types.ModuleType):
        """torch, with AdamW handing its optimizer to the stand-in model (which reads the lr it runs at)."""

        def __getattr__(self, name):
            return getattr(torch, name)

    proxy = _Torch("torch")
    proxy.optim = types.SimpleNamespace(
        AdamW=lambda *a, **k: setattr(model, "optimizer", torch.optim.AdamW(*a, **k)) or model.optimizer
    )

    def evaluate(model_, criterion, data_loader, iteration, fp16_scaler, args, is_last=None):
        record["evals"].append(iteration)
        return {"test/top1": scores[len(record["evals"]) - 1], "test/loss": 0.0}

    utils = reference_utils()
    namespace = {
        "os": __import__("os"),
        "sys": __import__("sys"),
        "time": __import__("time"),
        "datetime": __import__("datetime"),
        "random": __import__("random"),
        "math": types.SimpleNamespace(isfinite=lambda value: record["losses"].append(value) or math.isfinite(value)),
        "torch": proxy,
        "nn": nn,
        "v2": v2,
        "cudnn": torch.backends.cudnn,
        "wandb": None,
        "SUBSET_NAMES": {"toy": [f"class {i}" for i in range(CLASSES)]},
        "fix_random_seeds": lambda seed: None,
        "cosine_scheduler_iter": utils["cosine_scheduler_iter"],
        "MetricLogger": utils["MetricLogger"],
        "CLIP": lambda **kwargs: model,
        "load_data_loader": lambda args: (loader, None),
        "load_synth_train_data_loader": lambda args: loader,
        "eval": evaluate,
        "save_model": lambda args, m, opt, step, scaler, name: record["saves"].append(step),
    }
    found = load("Finetune/classify/main.py", ["main", "train_one_epoch", "get_accuracy"], namespace)
    train = paper_train("stanford_cars")
    args = types.SimpleNamespace(
        dataset="toy",
        output_dir=str(tmp_path),
        seed=0,
        is_synth_train=True,
        is_real_shots=True,
        model_type="clip",
        is_lora_image=True,
        is_lora_text=True,
        clip_download_dir=None,
        clip_version="ViT-B/16",
        is_mix_aug=False,
        test=False,
        lr=train.lr,
        wd=train.weight_decay,
        min_lr=train.min_lr,
        total_iterations=steps,
        val_iter=eval_every,
        lambda_1=train.lambda_real,
        use_fp16=False,
        log=None,
    )
    found["main"](args)
    return record, model, loader, train


@pytest.mark.filterwarnings("ignore:`torch.cuda.amp.autocast")
def test_the_loop_mixes_the_losses_steps_the_lr_and_keeps_the_checkpoint_as_the_reference(tmp_path, monkeypatch):
    steps, eval_every, batches = 40, 6, 7
    scores = [0.5, 0.7, 0.7, 0.6, 0.9, 0.9, 0.8]  # equal tops: the earlier weights stay
    record, model, loader, train = run_reference_main(
        tmp_path, monkeypatch, steps=steps, eval_every=eval_every, batches=batches, scores=scores
    )
    # loss: l * CE(real rows) + (1 - l) * CE(synthetic rows), a kind absent from the batch adding 0
    assert len(record["losses"]) == len(model.logits)
    for step, (loss, logits) in enumerate(zip(record["losses"], model.logits)):
        _, labels, is_real = loader[step % batches]
        ours = weighted_loss(logits, labels, is_real.bool(), train.lambda_real, both_kinds=True)
        assert math.isclose(float(ours), loss, rel_tol=1e-6), step

    # lr: ours at every one of our `steps` steps; the reference runs one more (at min_lr) when its loader
    # length does not divide `steps` (main.py:187-201,244-247): a documented deviation
    warmup = warmup_steps(steps, train.warmup_fraction)
    ours = [lr_at(step, steps, warmup, train.lr, train.min_lr) for step in range(steps)]
    assert len(model.lrs) == steps + 1 and model.lrs[steps] == train.min_lr
    assert np.abs(np.array(model.lrs[:steps]) - ours).max() < 1e-15

    # evaluations: ours after 6, 12, ..., 36 optimizer steps and after the last (40). The reference's
    # periodic ones carry the same numbers, but 0-based: global_iter % val_iter == 0 after the optimizer
    # step of global_iter (main.py:352), so after 7, 13, ..., 37 steps; its last follows its extra step 41
    ours_at = [step for step in range(1, steps + 1) if step % eval_every == 0 or step == steps]
    assert record["evals"][:-1] == ours_at[:-1] and len(record["evals"]) == len(ours_at)

    # the kept checkpoint: a strictly higher test top-1 replaces it, in both (ties keep the earlier)
    kept, best = [], None
    for index, (step, top1) in enumerate(zip(ours_at, scores)):
        evaluation = Evaluation(step=step, top1=top1, loss=0.0, split="test")
        if evaluation.better_than(best):
            best, kept = evaluation, [*kept, index]
    assert kept == [record["evals"].index(step) for step in record["saves"]] == [0, 1, 4]
    assert best.top1 == max(scores)


# --- transforms --------------------------------------------------------------------------------------


def reference_transforms():
    import random

    util = load(
        "Finetune/classify/util_data.py",
        ["GaussianBlur", "Solarization"],
        {"random": random, "ImageFilter": ImageFilter, "ImageOps": ImageOps},
    )
    data = load(
        "Finetune/classify/data.py",
        ["get_transforms", "CLIP_NORM_MEAN", "CLIP_NORM_STD", "NORM_MEAN", "NORM_STD"],
        {"tv": tv, **util},
    )
    return data["get_transforms"]("clip"), util, data


def _photo(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (300, 400, 3), dtype=np.uint8))


def test_the_train_augmentation_is_the_references_step_for_step():
    (theirs, _), util, data = reference_transforms()
    augment = paper_train("oxford_pets").augment
    ours = train_transform(224, OPENAI_MEAN, OPENAI_STD, augment, "bicubic").transforms
    assert data["CLIP_NORM_MEAN"] == OPENAI_MEAN and data["CLIP_NORM_STD"] == OPENAI_STD
    rgb, randaugment, crop, aux, to_tensor, normalize = theirs.transforms
    flip, jitter, gray, blur, solarize = aux.transforms
    names = [type(step).__name__ for step in ours]
    assert names == [
        "RandAugment",
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "RandomApply",
        "RandomGrayscale",
        "PilGaussianBlur",
        "RandomSolarize",
        "ToImage",
        "ToDtype",
        "Normalize",
    ]  # the reference's order: RandAugment on the full image, the crop, then the rest (data.py:58-84)
    assert (ours[0].num_ops, ours[0].magnitude, ours[0].num_magnitude_bins) == (
        randaugment.num_ops,
        randaugment.magnitude,
        randaugment.num_magnitude_bins,
    )
    space = randaugment._augmentation_space(31, (224, 224))
    for op, (magnitudes, signed) in space.items():  # the same ops, magnitudes and signs (v1 and v2 tables)
        ours_magnitudes, ours_signed = ours[0]._AUGMENTATION_SPACE[op]
        table = ours_magnitudes(31, 224, 224)
        table = torch.zeros(()) if table is None else table.float()  # v2 writes None where v1 writes 0.0
        if op == "Solarize":  # v2's threshold is a share of the image's range, 255 for a PIL image
            table = table * 255.0
        assert ours_signed == signed and torch.allclose(table, magnitudes.float())
    assert (tuple(crop.size), crop.scale, crop.ratio, crop.interpolation) == (
        tuple(ours[1].size),
        tuple(augment.crop_scale),
        tuple(augment.crop_ratio),
        ours[1].interpolation,
    )
    assert flip.p == ours[2].p and jitter.p == ours[3].p and gray.p == ours[4].p
    assert (blur.p, blur.radius_min, blur.radius_max) == (ours[5].p, *ours[5].sigma)
    assert solarize.p == ours[6].p and ours[6].threshold == 128  # ImageOps.solarize's default

    # with one torch seed the random steps that draw alike give the same pixels
    image = _photo(0)
    for theirs_step, ours_step in ((crop, ours[1]), (flip, ours[2]), (jitter, ours[3]), (gray, ours[4])):
        for seed in range(5):
            torch.manual_seed(seed)
            expected = np.asarray(theirs_step(image))
            torch.manual_seed(seed)
            assert np.array_equal(np.asarray(ours_step(image)), expected)
    # blur and solarize draw from Python's `random` there, torch here: equal when they fire
    fixed_blur = util["GaussianBlur"](p=1.0, radius_min=1.3, radius_max=1.3)
    assert np.array_equal(np.asarray(fixed_blur(image)), np.asarray(type(ours[5])(1.0, (1.3, 1.3))(image)))
    fires = util["Solarization"](p=1.0)
    assert np.array_equal(np.asarray(fires(image)), np.asarray(v2.RandomSolarize(threshold=128, p=1.0)(image)))
    tail = v2.Compose(list(ours[7:]))
    assert torch.allclose(tail(image), normalize(to_tensor(rgb(image))), atol=1e-6)


def test_the_eval_preprocessing_is_the_references():
    (_, theirs), _, _ = reference_transforms()
    ours = eval_transform(224, OPENAI_MEAN, OPENAI_STD, "bicubic")
    for seed in range(3):
        image = _photo(seed)
        assert torch.allclose(ours(image), theirs(image), atol=1e-6)
