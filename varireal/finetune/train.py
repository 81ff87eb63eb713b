"""Fine-tune LoRA-CLIP on the selected real and synthetic images; keep the weights the protocol chooses.

    python -m stages.train                     # the DVC stage: params.yaml -> data/train, reports/train
    dvc exp run -S profile=paper -S feas=mixed # the paper's model and mixed edits

One read, top to bottom (`fit`; what a run is made of, the model, loaders and optimizer:
varireal.finetune.run):
- `steps` optimizer steps (or `epochs` passes); batches: `pool`, the next `batch_size` rows of
  one shuffled pool of synthetic rows + real rows x real_repeats (the reference's), or
  `per_kind`, `batch_size` rows of each kind (varireal.finetune.batches.step_sampler); one forward pass;
- loss = lambda_real * CE(real rows) + (1 - lambda_real) * CE(synthetic rows) when both kinds
  train, a kind absent from the batch adding 0; plain CE when one kind trains
  (varireal.finetune.objective.weighted_loss; under DDP each rank weighs its part by the whole step's counts);
- AdamW on the LoRA weights only; lr: linear warm-up from min_lr over int(warmup_fraction x steps)
  steps, then cosine down to min_lr (varireal.finetune.objective.lr_at); fp16 autocast + GradScaler on CUDA when amp is on;
- every eval_every steps and after the last one: val top-1 where there is val and, under protocol
  paper only, test top-1. The kept weights (varireal.finetune.kept): paper the best test top-1 (strictly
  higher replaces, as the paper did: optimistic); final the last; heldout_val the best val (top-1,
  then lower loss, then earlier). Best weights stay in memory and are written once at the end,
  with kept.json saying how they were chosen. Only protocol paper reads the test split here.
- dvclive writes params, train loss, lr and val (test) metrics to reports/train, never dvc.yaml; it and
  the adapter write into staging folders that replace reports/train and data/train on success.
- every checkpoint_every steps the whole state goes to one file (varireal.finetune.checkpoint); a killed
  run restarted with the same settings resumes there and ends with the same bytes on CPU. A
  checkpoint that cannot be written is a warning: training goes on.

Everything random (LoRA init, batch order, augmentation, dropout, CutMix) is drawn from
train.seed, so a killed run restarted from scratch reproduces the uninterrupted one on CPU.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from varireal.finetune import checkpoint
from varireal.finetune.checkpoint import TrainState
from varireal.finetune.data import (
    SelectionError,
    read_class_names,
    real_rows,
    select_training_rows,
)
from varireal.finetune.kept import CHOICES, CHOSEN_ON, Choice, Evaluation, kept_record, write_kept
from varireal.finetune.lora import parameter_counts, save_adapter, trainable_parameters
from varireal.finetune.objective import mix_by_kind, weighted_loss
from varireal.finetune.run import Run, autocast, predict, prepare
from varireal.io import named_os_errors, staged_directory, write_table
from varireal.launch import SINGLE, Ranks
from varireal.seeding import item_seed
from varireal.settings.train import TrainParams
from varireal.vocabulary import Protocol

ADAPTER_FILE = "adapter.safetensors"
SELECTION_FILE = "selection.csv"
PROBE_STEPS = 3  # steps timed before the rest of the run is estimated (train.<profile>.max_hours)


class TrainingDiverged(ValueError):
    """The loss is no longer a finite number."""


class RunTooLong(ValueError):
    """The run, timed on its first steps, would pass train.<profile>.max_hours."""


def train_step(run: Run, images: torch.Tensor, labels: torch.Tensor, is_real: torch.Tensor) -> float:
    """One optimizer step (this rank's part of it under DDP); returns the step's loss."""
    device, settings = run.device, run.settings
    images = images.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    is_real = is_real.to(device, non_blocking=True)
    targets: torch.Tensor = labels
    if run.mixer is not None:
        images, targets = mix_by_kind(images, labels, is_real, run.mixer, run.model.num_classes)
    with autocast(device, settings.amp):
        logits = run.net(images)
    real_rows, synthetic_rows = run.ranks.total(int(is_real.sum()), int((~is_real).sum()))
    part = weighted_loss(
        logits,
        targets,
        is_real,
        settings.lambda_real,
        (int(real_rows), int(synthetic_rows)),
        both_kinds=settings.data == "synthetic_real",
    )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(part * run.ranks.world).backward()  # DDP averages the ranks' gradients; their sum is the step's
    run.scaler.step(run.optimizer)
    run.scaler.update()
    with warnings.catch_warnings():
        # GradScaler skips the optimizer step while it searches its scale (fp16 overflow); the
        # schedule still counts the step, as intended, so torch's warning about it is noise.
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        run.scheduler.step()
    (loss,) = run.ranks.total(float(part.detach()))
    return loss


# --- the loop ------------------------------------------------------------------------------------


def validate(run: Run, loader: DataLoader, split: str, step: int) -> Evaluation:
    logits, labels = predict(run.model, loader, run.device, run.settings.amp)
    top1 = float((logits.argmax(dim=1) == labels).double().mean())
    return Evaluation(step=step, top1=top1, loss=float(F.cross_entropy(logits, labels)), split=split)


def score(run: Run, state: TrainState, choice: Choice, parameters: dict[str, torch.nn.Parameter]) -> dict[str, float]:
    """Val (where there is one) and test (protocol paper) of the weights now; keeps them when they beat
    the best on the split `choice` is made on. Returns the metrics to log."""
    row = {}
    for split, loader in (("val", run.val_loader), ("test", run.test_loader)):
        if loader is None:
            continue
        evaluation = validate(run, loader, split, state.step)
        row.update({f"{split}/top1": evaluation.top1, f"{split}/loss": evaluation.loss})
        if split == "val":
            state.last = evaluation
        if CHOSEN_ON[choice] == split and evaluation.better_than(state.best):
            state.best = evaluation
            state.best_lora = {name: p.detach().clone() for name, p in parameters.items()}
    return row


@dataclass(frozen=True)
class Checkpoints:
    """Where and how often `fit` saves its state, and the fingerprint that must match to resume."""

    path: Path
    every: int  # steps; 0 = never
    fingerprint: str


def fit(run: Run, live, choice: Choice = "best_val", checkpoints: Checkpoints | None = None) -> Evaluation | None:
    """Train for all steps, evaluating on schedule; resume from a matching checkpoint.

    choice best_val / best_test: leave the best LoRA weights on that split in run.model and return
    their evaluation; final: keep the final weights and return the last val (None without val).
    """
    total = len(run.sampler)
    parameters = dict(trainable_parameters(run.model))
    state = _resume(run, live, parameters, checkpoints, total)
    run.sampler.start = first = state.step
    started = time.perf_counter()
    run.model.train()
    for step, (images, labels, is_real) in enumerate(run.loader, start=state.step):
        lr = run.optimizer.param_groups[0]["lr"]
        loss = train_step(run, images, labels, is_real)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"train loss is {loss} at step {step + 1}: the run diverged; lower "
                f"train.<profile>.lr (now {run.settings.lr:g}) or check the images"
            )
        row = {"train/loss": loss, "train/lr": lr}
        state.step = step + 1  # dvclive's step = optimizer steps done, as Evaluation.step
        if state.step == first + PROBE_STEPS and state.step < total:
            check_time(run, (time.perf_counter() - started) / PROBE_STEPS, total - state.step)
        if state.step % run.settings.eval_every == 0 or state.step == total:
            row.update(score(run, state, choice, parameters))
        _log(live, state.step, row)
        state.logged.append({"step": state.step, **row})
        if checkpoints and checkpoints.every and state.step % checkpoints.every == 0 and state.step < total:
            rngs = run.ranks.gather(torch.get_rng_state())  # every rank's dropout and CutMix draws
            if run.ranks.main:
                checkpoint.save(
                    checkpoints.path,
                    checkpoints.fingerprint,
                    run,
                    state,
                    {n: p.detach() for n, p in parameters.items()},
                    rngs,
                )
    keep_best = CHOSEN_ON[choice] is not None
    if keep_best and state.best_lora is not None:  # None on the ranks other than 0: they score nothing
        with torch.no_grad():
            for name, parameter in parameters.items():
                parameter.copy_(state.best_lora[name])
    run.model.train(False)
    return state.best if keep_best else state.last


def check_time(run: Run, seconds_per_step: float, steps_left: int) -> None:
    """Print the time the rest of the run will take, measured on its first steps; over train.<profile>.max_hours
    it stops before the cost (no checkpoint written yet: the last run's outputs and checkpoints are untouched)."""
    (per_step,) = run.ranks.total(seconds_per_step / run.ranks.world)  # every rank decides on the same mean
    hours = per_step * steps_left / 3600
    limit = run.settings.max_hours
    if run.ranks.main:
        print(
            f"train: {steps_left:,} steps left at {per_step:.3g} s each (first {PROBE_STEPS} timed): about {hours:.3g} h"
        )
    if limit is not None and hours > limit:
        raise RunTooLong(
            f"train: the run would take about {hours:.3g} h ({steps_left:,} steps left at {per_step:.3g} s each, "
            f"timed on its first {PROBE_STEPS}), above train.<profile>.max_hours = {limit:g}; lower the steps or "
            "epochs, or raise max_hours (null: no limit)"
        )


def _resume(run: Run, live, parameters: dict, checkpoints: Checkpoints | None, total: int) -> TrainState:
    payload = checkpoint.load(checkpoints.path, checkpoints.fingerprint, total) if checkpoints else None
    if payload is None:
        return TrainState()
    state = checkpoint.restore(run, payload, parameters, run.ranks.rank)
    for row in state.logged:  # dvclive starts afresh: the logs of the steps done come from the checkpoint
        _log(live, row["step"], {name: value for name, value in row.items() if name != "step"})
    print(f"train: resuming at step {state.step} of {total} from {checkpoints.path}")
    return state


def _log(live, step: int, row: dict[str, float]) -> None:
    if live is None:  # not rank 0: one process writes dvclive
        return
    with named_os_errors(live.dir):  # a write() that fails for a full disk names no file: name dvclive's folder
        live.step = step
        for name, value in row.items():
            live.log_metric(name, value)
        live.make_summary()


@dataclass(frozen=True)
class TrainResult:
    adapter: Path
    selection: Path
    kept: (
        Evaluation | None
    )  # the kept weights on the split they were chosen on, or final's last val; None: final, no val
    steps: int
    images: dict[str, int]  # selected training images per kind
    seconds: float


def train(
    settings: TrainParams,
    *,
    real_dir: str | Path,
    synthetic_dirs: Mapping[str, str | Path],
    feas: str,
    protocol: Protocol = "heldout_val",
    model_dir: str | Path,
    prefix: str,
    out_dir: str | Path,
    report_dir: str | Path,
    extra_params: Mapping[str, object] | None = None,
    checkpoint_dir: str | Path | None = None,
    ranks: Ranks = SINGLE,
) -> TrainResult:
    """Select, train, write out_dir/adapter.safetensors + selection.csv and the dvclive files in report_dir.

    checkpoint_dir: where the resumable state goes every settings.checkpoint_every steps (None: nowhere).
    ranks: the DDP processes sharing each step (varireal.launch); rank 0 alone scores val (and test)
    and writes the files, the checkpoint and dvclive's logs.
    """
    from dvclive import Live

    started = time.perf_counter()
    out_dir = Path(out_dir)
    class_names = read_class_names(real_dir)
    selection = select_training_rows(
        real_dir,
        synthetic_dirs,
        feas,
        data=settings.data,
        images_per_class=settings.images_per_class,
        real_shots=settings.real_shots,
        seed=settings.seed,
    )
    choice = CHOICES[protocol]
    val = real_rows(real_dir, "val")
    test = real_rows(real_dir, "test") if CHOSEN_ON[choice] == "test" else None  # the paper's choice reads test
    for split, rows in (("val", val), ("test", test)):
        if CHOSEN_ON[choice] == split and rows.empty:
            raise SelectionError(
                f"{Path(real_dir) / 'manifest.csv'}: no {split} image; protocol {protocol} chooses the checkpoint on {split} "
                "(protocol final keeps the final one)"
            )
    images = selection["kind"].value_counts().to_dict()
    with torch.random.fork_rng(devices=_cuda_devices(settings.device)):
        # Dropout in the LoRA layers and CutMix/MixUp draw from torch's global generator.
        torch.manual_seed(item_seed(settings.seed, "train", *([] if ranks.world == 1 else [f"rank {ranks.rank}"])))
        run = prepare(
            settings,
            selection,
            val,
            model_dir=model_dir,
            class_names=class_names,
            prefix=prefix,
            ranks=ranks,
            test=test,
        )
        # Rank 0 writes both outputs into staging folders that replace out_dir and report_dir only
        # once all is written: a run that fails (a bad image, a full disk) leaves the last good
        # adapter and reports as they were (the reports are `cache: false`: DVC could not restore them).
        with _staged(report_dir, ranks) as reports, _staged(out_dir, ranks) as staged_out:
            writer = (
                Live(dir=str(reports), dvcyaml=False, save_dvc_exp=False, report=None) if ranks.main else nullcontext()
            )
            with writer as live:
                _log_params(
                    live,
                    {
                        **settings.model_dump(mode="json"),
                        **dict(extra_params or {}),
                        "feas": feas,
                        "protocol": protocol,
                        "steps": len(run.sampler),
                        "images": images,
                        **{f"parameters_{k}": v for k, v in parameter_counts(run.model).items()},
                    },
                )
                checkpoints = (
                    None
                    if checkpoint_dir is None
                    else _checkpoints(
                        settings,
                        selection,
                        Path(checkpoint_dir),
                        {"feas": feas, "protocol": protocol, **dict(extra_params or {})},
                    )
                )
                kept = fit(run, live, choice, checkpoints)
                record = kept_record(choice, kept, len(run.sampler))
                _log_summary(live, record)
            if ranks.main:
                write_table(staged_out / SELECTION_FILE, selection)
                save_adapter(run.model, staged_out / ADAPTER_FILE)
                write_kept(staged_out, record)  # how the weights were chosen: evaluate reports it
    if checkpoints is not None and ranks.main:  # the run is done and written: its resumable state is not needed
        checkpoint.discard(checkpoints.path)
    return TrainResult(
        out_dir / ADAPTER_FILE, out_dir / SELECTION_FILE, kept, len(run.sampler), images, time.perf_counter() - started
    )


def _checkpoints(settings: TrainParams, selection, folder: Path, extra: dict[str, object]) -> Checkpoints:
    run_fingerprint = checkpoint.fingerprint(settings.model_dump(mode="json"), selection, extra)
    return Checkpoints(checkpoint.checkpoint_path(folder, run_fingerprint), settings.checkpoint_every, run_fingerprint)


def _staged(path: str | Path, ranks: Ranks) -> AbstractContextManager[Path]:
    """Rank 0's staging folder for the output `path` (varireal.io.staged_directory); the other ranks write nothing."""
    return staged_directory(path) if ranks.main else nullcontext(Path(path))


def _log_params(live, params: dict) -> None:
    if live is not None:
        with named_os_errors(live.dir):
            live.log_params(params)


def _log_summary(live, record: dict) -> None:
    """metrics.json: checkpoint, checkpoint_note and kept (the kept weights' step and scores)."""
    if live is not None:
        with named_os_errors(live.dir):
            live.summary.update(record)
            live.make_summary()  # now, where a full disk is named; Live.end() writes the same bytes again


def _cuda_devices(device: str) -> list[int]:
    """CUDA devices whose generators fork_rng must save and restore (none on CPU)."""
    return list(range(torch.cuda.device_count())) if device != "cpu" and torch.cuda.is_available() else []
