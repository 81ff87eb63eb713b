"""The runs of the study: the baseline commit and its experiments, each with its test predictions.

`dvc exp show --json` lists HEAD (the baseline commit) and the experiments derived from it
with their params, their metrics (reports/eval/metrics.json: how the checkpoint was chosen),
and the hash of every dependency and output as recorded in that revision's dvc.lock. Each
run's per-image predictions are read at its own revision with `dvc.api.read`, from the local
DVC cache or, after `dvc exp pull` / `dvc pull`, the remote.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
# Dependencies that differ between runs by design: train reads the synthetic set of its own
# `attr`, evaluate reads the adapter train wrote. What makes them (edit code, prompts, masks,
# params) is itself a dependency or param of the pipeline and is compared.
KNOB_DEPS = ("data/synthetic/", "data/train")
# Experiments that have no results yet (dvc exp show's executor states).
UNFINISHED = ("queued", "running", "failed")


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
        """What must be equal to pool or pair this run with another: all but the compared knobs and the seed.
        The checkpoint choice is part of it even where the params agree (a run from before `checkpoint`)."""
        keys = {f"param {k}": v for k, v in self.params.items() if k not in (*KNOBS, SEED)}
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


def exp_show(repo: Path) -> list[dict]:
    """`dvc exp show --json` of the repository (HEAD and its experiments)."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StudyError(f"dvc exp show failed in {repo}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def runs_from_exp_show(entries: list[dict]) -> tuple[list[Run], list[str]]:
    """The finished runs in `dvc exp show --json` output, and a note per run left out (queued, failed)."""
    runs, notes = [], []
    for entry in entries:
        if entry["rev"] == "workspace":
            continue  # the workspace is HEAD or the last experiment run in it, never a run of its own
        baseline = _run(entry, entry.get("name") or entry["rev"][:7])
        if baseline is None:
            notes.append(f"baseline {entry['rev'][:7]}: no results ({_error(entry)})")
        else:
            runs.append(baseline)
        for experiment in entry.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state")
            name = experiment.get("name") or experiment["revs"][0]["rev"][:7]
            if state in UNFINISHED:
                notes.append(f"experiment {name}: {state}, left out")
                continue
            for revision in experiment["revs"]:
                run = _run(revision, revision.get("name") or name)
                if run is None:
                    notes.append(f"experiment {name}: no results ({_error(revision)}), left out")
                else:
                    runs.append(run)
    return runs, notes


def _run(state: dict, name: str) -> Run | None:
    data = state.get("data")
    if not data or state.get("error"):
        return None
    params = (data.get("params") or {}).get("params.yaml", {}).get("data")
    if params is None:
        return None
    deps = {path: dep["hash"] for path, dep in (data.get("deps") or {}).items() if dep.get("hash")}
    metrics = ((data.get("metrics") or {}).get(METRICS) or {}).get("data") or {}
    return Run(name=name, rev=data["rev"], params=flatten(params), deps=deps, metrics=metrics)


def _error(state: dict) -> str:
    error = state.get("error") or {}
    return error.get("msg") or "nothing recorded"


def parse_predictions(text: str) -> pd.DataFrame:
    """predictions.csv as text -> id (text, leading zeros kept), label, correct (bool)."""
    table = pd.read_csv(io.StringIO(text), usecols=["id", "label", "correct"], dtype={"id": str}, keep_default_na=False)
    if table["correct"].dtype != bool:
        table["correct"] = table["correct"].astype(str).str.lower() == "true"
    return table


def read_predictions(repo: str | Path, rev: str, name: str | None = None) -> pd.DataFrame:
    """predictions.csv at a revision (from git, the DVC cache or the remote), parsed."""
    import dvc.api  # noqa: PLC0415 (slow import, only when reading)

    try:
        return parse_predictions(dvc.api.read(PREDICTIONS, repo=str(repo), rev=rev))
    except Exception as err:  # dvc raises its own errors for a file missing from cache, remote or commit
        raise StudyError(
            f"{name or rev} ({rev[:7]}): cannot read {PREDICTIONS} ({type(err).__name__}: {err}); "
            "`dvc pull` (baseline) or `dvc exp pull <git remote> <name>` (experiment) brings pushed results"
        ) from err


def collect(repo: str | Path = ".", exclude: tuple[str, ...] = ()) -> tuple[list[Run], list[str]]:
    """Every finished run of HEAD and its experiments with its predictions, and a note per run left out.

    Left out: `exclude` (experiment names or rev prefixes), unfinished experiments, and runs
    whose predictions are neither in the cache nor on the remote (the note says how to get them).
    """
    repo = Path(repo)
    runs, notes = runs_from_exp_show(exp_show(repo))
    kept = []
    for run in runs:
        if any(run.name == x or run.rev.startswith(x) for x in exclude):
            notes.append(f"{run.name}: excluded (--exclude)")
            continue
        try:
            run.predictions = read_predictions(repo, run.rev, run.name)
        except StudyError as err:
            notes.append(f"left out: {err}")
            continue
        kept.append(run)
    return kept, notes
