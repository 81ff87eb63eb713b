"""`varireal grid`: the commands that make the whole study, with `varireal plan`'s cost first.

The grid is datasets x procedures x (attr x feas x train.data, and the real-only baseline) x seeds.
Every (dataset, procedure) needs a *baseline*: a commit whose pipeline ran up to its edits, from
which experiments only retrain (DVC checks the committed outputs out of the cache; a queued
experiment that changed `dataset` or a switch the edits read would regenerate every edit, once per
run). HEAD is the baseline of its own dataset and procedure; each other one is run once as an
experiment and promoted to a branch (`dvc exp branch`), so params.yaml, dvc.lock and the results
are committed together. Its experiments are then queued on that branch.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from varireal.study.cells import BASELINE, DATA_MODES
from varireal.study.procedure import switch_keys, yaml_value
from varireal.study.runs import StudyError
from varireal.vocabulary import ATTRIBUTES, DATASETS, TRAIN_FEASIBILITIES

# `varireal plan`'s line for the fine-tunes of one seed of the full grid, and its edit total.
PLAN_GRID = re.compile(r"the study grid, one seed \(.*?= (\d+) runs\): ([\d,.]+) GPU-hours")
PLAN_EDITS = re.compile(r"^\s*total\s+([\d,.]+) device-hours", re.MULTILINE)


@dataclass(frozen=True)
class Grid:
    """What `varireal grid` was asked for."""

    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    attrs: tuple[str, ...] = ATTRIBUTES
    feasibilities: tuple[str, ...] = TRAIN_FEASIBILITIES
    data: tuple[str, ...] = (*DATA_MODES, BASELINE)
    switches: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (key, values) of each compared switch

    @property
    def cells(self) -> int:
        synthetic = [mode for mode in self.data if mode != BASELINE]
        return len(self.attrs) * len(self.feasibilities) * len(synthetic) + (BASELINE in self.data)

    def procedures(self) -> list[dict[str, Any]]:
        """Every combination of the switches' values ({} without switches)."""
        combos: list[dict[str, Any]] = [{}]
        for key, values in self.switches:
            combos = [{**combo, key: value} for combo in combos for value in values]
        return combos


@dataclass(frozen=True)
class Baseline:
    dataset: str
    changes: dict[str, Any]  # params it sets where HEAD's params.yaml differs (dataset, switches)
    name: str  # the experiment and branch name when it is not HEAD
    at_head: bool = False


def parse_list(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise StudyError(f"{option} {text!r}: expected a comma list of {', '.join(allowed)}")
    return values


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise StudyError(f"--seeds {text!r}: expected a comma list of integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
        raise StudyError(f"--seeds {text!r}: expected distinct seeds >= 0")
    return seeds


def parse_switch(text: str, profile: str) -> tuple[str, tuple[Any, ...]]:
    """`filter.tiny.show_answer=true,false` -> (key, (True, False)); the key must be a declared switch."""
    key, sep, values = text.partition("=")
    declared = switch_keys(profile)
    if not sep or key not in declared:
        raise StudyError(
            f"--switch {text!r}: expected KEY=VALUE,VALUE with KEY a procedure switch of profile {profile}: "
            f"{', '.join(declared)}"
        )
    parsed = tuple(yaml.safe_load(value) for value in values.split(","))
    if len(set(map(repr, parsed))) != len(parsed) or len(parsed) < 1:
        raise StudyError(f"--switch {text!r}: expected distinct values")
    return key, parsed


def baselines(grid: Grid, head: Mapping[str, Any]) -> list[Baseline]:
    """One per (dataset, procedure); `head`: HEAD's params.yaml, flattened."""
    found = []
    for dataset in grid.datasets:
        for procedure in grid.procedures():
            wanted = {"dataset": dataset, **procedure}
            changes = {key: value for key, value in wanted.items() if head.get(key) != value}
            parts = [dataset] + [f"{key.rsplit('.', 1)[-1]}-{yaml_value(v)}" for key, v in procedure.items()]
            found.append(Baseline(dataset, changes, "study-" + "-".join(parts), at_head=not changes))
    return found


def sweep_lines(grid: Grid) -> list[str]:
    """`dvc exp run --queue` lines in DVC's sweep syntax: the synthetic cells, then the real-only baseline."""
    seeds = ",".join(map(str, grid.seeds))
    synthetic = [mode for mode in grid.data if mode != BASELINE]
    lines = []
    if synthetic:
        lines.append(
            f"dvc exp run --queue -S attr={','.join(grid.attrs)} -S feas={','.join(grid.feasibilities)} "
            f"-S train.data={','.join(synthetic)} -S train.seed={seeds}"
        )
    if BASELINE in grid.data:
        lines.append(f"dvc exp run --queue -S train.data={BASELINE} -S train.seed={seeds}")
    return lines


def _sets(changes: Mapping[str, Any]) -> str:
    return " ".join(f"-S {key}={yaml_value(value)}" for key, value in changes.items())


def script(grid: Grid, head: Mapping[str, Any], head_name: str, branches: set[str]) -> list[str]:
    """The shell lines that make the grid, with a comment per baseline. `head_name`: HEAD's branch
    (or its sha when detached); `branches`: the git branches that exist (a baseline already promoted is
    reused)."""
    back = f"git switch {head_name}" if head_name in branches else f"git switch --detach {head_name}"
    lines, revs = [], []
    for baseline in baselines(grid, head):
        title = ", ".join(
            f"{key}={yaml_value(value)}" for key, value in {"dataset": baseline.dataset, **baseline.changes}.items()
        )
        branch = f"study/{baseline.name.removeprefix('study-')}"
        if baseline.at_head:
            lines += [f"# {baseline.dataset}: HEAD ({head_name}) is its baseline", *sweep_lines(grid), ""]
            revs.append(head_name)
            continue
        if branch in branches:
            lines += [f"# {title}: its baseline is the branch {branch}", f"git switch {branch}"]
        else:
            lines += [
                f"# {title}: its own baseline (the pipeline once), promoted to a branch with its results",
                f"dvc exp run --temp -n {baseline.name} {_sets(baseline.changes)}",
                f"dvc exp branch {baseline.name} {branch}",
                f"git switch {branch}",
            ]
        # back by name: `git switch -` would not do, as dvc's queue checks HEAD out and back itself
        lines += [*sweep_lines(grid), back, ""]
        revs.append(branch)
    compare = " ".join(f"--compare {key}" for key, values in grid.switches if len(values) > 1)
    study = " ".join(["varireal study", *(f"--rev {rev}" for rev in revs), *([compare] if compare else [])])
    return [*lines, "dvc exp run --run-all             # runs every queued experiment and waits", study]


def run_plan(changes: Mapping[str, Any], params_file: Path) -> str:
    """`varireal plan` for one baseline's params, as printed."""
    sets = [arg for key, value in changes.items() for arg in ("-S", f"{key}={yaml_value(value)}")]
    result = subprocess.run(
        [sys.executable, "-m", "varireal.cli", "plan", "--params", str(params_file), *sets],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise StudyError(f"varireal plan {' '.join(sets)} failed:\n{(result.stderr or result.stdout).strip()}")
    return result.stdout


def cost_lines(grid: Grid, head: Mapping[str, Any], plan: Callable[[Mapping[str, Any]], str]) -> list[str]:
    """Each baseline's `varireal plan`, then the grid's runs and hours from the plans' figures."""
    lines, training, editing, known = [], 0.0, 0.0, True
    for baseline in baselines(grid, head):
        changes = {"dataset": baseline.dataset, **{k: v for k, v in baseline.changes.items() if k != "dataset"}}
        text = plan(changes)
        lines += [f"# varireal plan {_sets(changes)}", *text.rstrip().splitlines(), ""]
        per_grid, edits = PLAN_GRID.search(text), PLAN_EDITS.search(text)
        if per_grid is None or (edits is None and not baseline.at_head):
            known = False
            continue
        runs, hours = int(per_grid.group(1)), float(per_grid.group(2).replace(",", ""))
        training += hours / runs * grid.cells * len(grid.seeds)
        editing += 0.0 if baseline.at_head else float(edits.group(1).replace(",", ""))
    total = len(baselines(grid, head)) * grid.cells * len(grid.seeds)
    summary = (
        f"# the grid: {len(grid.datasets)} datasets x {len(grid.procedures())} procedures x {grid.cells} cells x "
        f"{len(grid.seeds)} seeds = {total} runs"
    )
    hours = (
        f"# about {training:.1f} GPU-hours of fine-tuning and {editing:.1f} device-hours of editing and judging "
        "for the baselines not yet run (the plans' figures above)"
        if known
        else "# hours: see each plan above (a figure was not found in its text)"
    )
    return [*lines, summary, hours, ""]


def head_name(repo: Path) -> str:
    """HEAD's branch, or its short sha when detached."""
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=repo, capture_output=True, text=True)
    if branch.stdout.strip():
        return branch.stdout.strip()
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    return sha.stdout.strip()


def branch_names(repo: Path) -> set[str]:
    result = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads"], cwd=repo, capture_output=True, text=True
    )
    return set(result.stdout.split())


def queue(grid: Grid, head: Mapping[str, Any], repo: Path) -> list[str]:
    """Queue the experiments of the baseline that is HEAD (the others need their branch first);
    returns the lines run."""
    if not any(baseline.at_head for baseline in baselines(grid, head)):
        return []
    ran = []
    for line in sweep_lines(grid):
        args = line.split()[1:]  # after `dvc`
        result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
        if result.returncode != 0:
            raise StudyError(f"{line} failed:\n{(result.stderr or result.stdout).strip()}")
        ran.append(line)
    return ran


def from_options(
    head: Mapping[str, Any],
    datasets: list[str],
    seeds: str,
    attrs: str,
    feasibilities: str,
    data: str,
    switches: list[str],
) -> Grid:
    """The grid `varireal grid`'s options ask for, checked; `head`: HEAD's params.yaml, flattened
    (its dataset is the default, its profile says which switch keys exist)."""
    named = tuple(dict.fromkeys(datasets)) or (str(head.get("dataset")),)
    unknown = [name for name in named if name not in DATASETS]
    if unknown:
        raise StudyError(f"--dataset {unknown[0]}: expected one of {', '.join(DATASETS)}")
    return Grid(
        datasets=named,
        seeds=parse_seeds(seeds),
        attrs=parse_list(attrs, ATTRIBUTES, "--attr"),
        feasibilities=parse_list(feasibilities, TRAIN_FEASIBILITIES, "--feas"),
        data=parse_list(data, (*DATA_MODES, BASELINE), "--data"),
        switches=tuple(parse_switch(text, str(head.get("profile"))) for text in switches),
    )
