"""A run of the study and the words every module of varireal/study shares about runs.

A run is the baseline commit or one of its experiments: its params (params.yaml at that revision,
flattened), the hashes of its dependencies (its dvc.lock), its metrics and, once read, its test
predictions. What must be equal for two runs to share a table is their identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from varireal.finetune.kept import NOTES as CHECKPOINT_NOTES  # each checkpoint choice and the sentence that says it

PREDICTIONS = "reports/eval/predictions.csv"
METRICS = "reports/eval/metrics.json"
# Printed above every table whose numbers come from weights chosen on the test split.
OPTIMISTIC = f"checkpoint {CHECKPOINT_NOTES['best_test']}"
LOCK = "data/models/lock.json"
# The params a table compares (rows and columns) and the one it pools over; every other
# param must be equal in all runs of one table.
KNOBS = ("attr", "feas", "train.data")
SEED = "train.seed"
STUDY = "study."  # method.yaml `study:` (varireal/settings/study.py): how runs are judged, read by no stage
# Dependencies that differ between runs by design: train reads the synthetic set of its own
# `attr`, evaluate reads the adapter train wrote. What makes them (edit code, prompts, masks,
# params) is itself a dependency or param of the pipeline and is compared.
KNOB_DEPS = ("data/synthetic/", "data/train")


class StudyError(ValueError):
    """The runs cannot make one table: the message says which runs and what differs, or what is missing."""


@dataclass
class Run:
    """One trained and evaluated run: an experiment or the baseline commit."""

    name: str  # experiment name, or the branch / short sha of the baseline commit
    rev: str  # full git sha of the revision holding its results
    params: dict[str, Any]  # params.yaml flattened: {"train.seed": 0, "train.tiny.lr": 5e-4, ...}
    deps: dict[str, str] = field(default_factory=dict)  # dependency path -> hash in that dvc.lock
    predictions: pd.DataFrame | None = None  # id, label, correct (one row per test image)
    metrics: dict[str, Any] = field(default_factory=dict)  # reports/eval/metrics.json at that revision ({} if none)
    baseline: str = ""  # the commit it derives from (branch name or short sha); a baseline: itself

    @property
    def test_split(self) -> str:
        """sha256 of the (id, label) pairs of the test images, in order: the same test split or not."""
        assert self.predictions is not None, f"{self.name}: predictions not read"
        text = "".join(f"{i}\t{label}\n" for i, label in zip(self.predictions["id"], self.predictions["label"]))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def model_lock(self) -> str | None:
        return self.deps.get(LOCK)

    @property
    def checkpoint(self) -> str:
        """How the evaluated weights were chosen: best_test, final or best_val (see checkpoint_choice)."""
        return checkpoint_choice(self.metrics, self.params, f"{self.name} ({self.rev[:7]}): {METRICS}")

    def identity(self) -> dict[str, Any]:
        """What must be equal to pool or pair this run with another: all but the compared knobs and the seed
        (and `study:`, which judges runs and changes none). The checkpoint choice is part of it even where
        the params agree (a run from before `checkpoint`)."""
        keys = {f"param {k}": v for k, v in self.params.items() if k not in (*KNOBS, SEED) and not k.startswith(STUDY)}
        keys.update({f"dep {path}": value for path, value in self.deps.items() if not path.startswith(KNOB_DEPS)})
        keys["checkpoint"] = self.checkpoint
        if self.predictions is not None:
            keys["test split"] = self.test_split
        return keys


def checkpoint_choice(metrics: Mapping[str, Any], params: Mapping[str, Any], where: str) -> str:
    """metrics.json's `checkpoint`; a run older than that key chose by its protocol (flattened params):
    heldout_val (also a run older than the protocol param) the best val top-1, any other the final weights."""
    recorded = metrics.get("checkpoint")
    if recorded is None:
        protocol = params.get(f"protocol.{params.get('profile')}", "heldout_val")
        return "best_val" if protocol == "heldout_val" else "final"
    if not isinstance(recorded, str) or recorded not in CHECKPOINT_NOTES:
        raise StudyError(f"{where}: checkpoint {recorded!r}; expected one of {', '.join(CHECKPOINT_NOTES)}")
    return str(recorded)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"seed": 0}} -> {"train.seed": 0}; lists stay values."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


PARAMS_FILES = ("params.yaml", "method.yaml")  # the front page and the method's constants: a key lives in one


def merged_params(files: Mapping[str, Any]) -> dict[str, Any]:
    """The params of every file ({file name: its tree}) flattened into one mapping: a key lives in one file."""
    merged: dict[str, Any] = {}
    for name in sorted(files, key=lambda name: (name not in PARAMS_FILES, name)):
        if isinstance(files[name], dict):
            merged.update(flatten(files[name]))
    return merged
