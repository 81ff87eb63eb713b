"""Resumable training: the whole state of a run every `checkpoint_every` steps, in one file.

A paper fine-tune takes hours; a killed `train` picks up at its last checkpoint instead of
starting over. The file holds what the next step depends on: the LoRA weights, the optimizer,
lr schedule and GradScaler states, torch's global RNG of every DDP rank (dropout, CutMix), the best weights
(on val or, under protocol paper, test) and evaluations so far, and every metric logged (replayed into dvclive, which starts afresh). The
batch order and each image's augmentation depend on the step alone (varireal.finetune.data), so a
resumed run on CPU gives the bytes of an uninterrupted one.

The file is written atomically and loaded with `torch.load(weights_only=True)`. A failed write (a
full disk) is a warning on stderr, not the end of the run: the checkpoint is no output. Each run has its
own file, named by its fingerprint (settings, selected images, model, protocol, training code), so an ablation
never overwrites the checkpoint of a run killed before it; a checkpoint is used only when that fingerprint
matches this run's and it stopped before the last step, and train removes it once its run has finished.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from varireal.finetune.kept import Evaluation
from varireal.io import atomic_path
from varireal.keys import train_code

RUN_ONLY = ("num_workers", "checkpoint_every", "cache_decoded", "max_hours")  # how a run goes, not what it makes


def checkpoint_path(folder: Path, run_fingerprint: str) -> Path:
    """One file per run: a run with other settings leaves another run's checkpoint alone until that run
    finishes (train removes its own file then)."""
    return folder / f"state-{run_fingerprint[:16]}.pt"


@dataclass
class TrainState:
    """The loop's own state (weights and optimizer states live in the Run); a checkpoint restores both."""

    step: int = 0  # optimizer steps done
    best: Evaluation | None = None  # the best so far on the split the checkpoint is chosen on (varireal.finetune.kept)
    best_lora: dict[str, torch.Tensor] | None = None
    last: Evaluation | None = None  # the last val evaluation
    logged: list[dict[str, float]] = field(default_factory=list)  # one {"step", name: value, ...} per step


def fingerprint(settings: dict[str, Any], selection: pd.DataFrame, extra: dict[str, Any]) -> str:
    """sha256 of what decides the run: settings (but RUN_ONLY's: a run killed for its time limit resumes with
    a higher one), the images it trains on (in order), the rest, and the train stage's code (varireal.codebase:
    a checkpoint of older training code is not resumed by newer code)."""
    shaping = {name: value for name, value in settings.items() if name not in RUN_ONLY}
    text = json.dumps({"settings": shaping, "extra": extra, "code": train_code()}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    columns = ["kind", "id", "class_index", "feasibility", "size"]  # not paths: a moved checkout still resumes
    digest.update(pd.util.hash_pandas_object(selection[columns], index=False).values.tobytes())
    return digest.hexdigest()


def save(
    path: Path, run_fingerprint: str, run, state: TrainState, lora: dict[str, torch.Tensor], rngs: list[torch.Tensor]
) -> None:
    """Rank 0 writes the file; rngs: the global RNG state of each rank, in rank order."""
    payload = {
        "fingerprint": run_fingerprint,
        "step": state.step,
        "lora": lora,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rngs,
        "best": _record(state.best),  # plain dicts: weights_only loading accepts no dataclass
        "best_lora": state.best_lora,
        "last": _record(state.last),
        "logged": state.logged,
    }
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as err:  # torch's file writer reports a full disk as a RuntimeError
        # The checkpoint only saves time after a kill, so a failed write costs at most a
        # restart from an older one: warn and train on rather than lose the run.
        print(
            f"train: warning: could not write checkpoint {path} ({_cause(err, path)}{_free_space(path)}); "
            "training goes on, and a killed run would resume from an earlier checkpoint or start over",
            file=sys.stderr,
        )


def discard(path: Path) -> None:
    """Remove a finished run's checkpoint; one that cannot be removed is left (a rerun resumes it to the same bytes)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def load(path: Path, run_fingerprint: str, total_steps: int) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None (absent, another run's, or a finished one)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a file torch cannot read is not worth failing the run for: train from scratch
        print(f"train: ignoring unreadable checkpoint {path} ({type(err).__name__}: {err})")
        return None
    if payload.get("fingerprint") != run_fingerprint:
        print(f"train: {path} was written for another run; training from scratch")
        return None
    if not 0 < payload["step"] < total_steps:
        return None
    return payload


def restore(run, payload: dict[str, Any], parameters: dict[str, torch.nn.Parameter], rank: int = 0) -> TrainState:
    """Put the checkpoint's weights and states into `run` (RNG: this rank's); returns the loop's own state."""
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(payload["lora"][name])
    run.optimizer.load_state_dict(payload["optimizer"])
    run.scheduler.load_state_dict(payload["scheduler"])
    run.scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["rng"][rank])
    return TrainState(
        payload["step"],
        _evaluation(payload["best"]),
        payload["best_lora"],
        _evaluation(payload["last"]),
        payload["logged"],
    )


def _cause(err: OSError | RuntimeError, path: Path) -> str:
    """Why the write failed, and where when that is not `path` itself (its folder, say)."""
    if not (isinstance(err, OSError) and err.strerror):
        return f"{type(err).__name__}: {err}"
    where = err.filename is not None and str(err.filename) != str(path)
    return f"{err.filename}: {err.strerror}" if where else err.strerror


def _free_space(path: Path) -> str:
    """The free space where `path` goes, as ", N MB free on its disk": torch names no cause for a full disk."""
    try:
        free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    except OSError:
        return ""
    return f", {free / 2**20:.0f} MB free on its disk"


def _record(evaluation: Evaluation | None) -> dict[str, float | str] | None:
    return None if evaluation is None else asdict(evaluation)


def _evaluation(record: dict[str, float | str] | None) -> Evaluation | None:
    if record is None:
        return None
    return Evaluation(step=int(record["step"]), top1=record["top1"], loss=record["loss"], split=str(record["split"]))
