"""The runs of the study: the baseline commits and their experiments, each with its test predictions.

`dvc exp show --json` lists HEAD (the baseline commit) and the experiments derived from it
with their params, their metrics (reports/eval/metrics.json: how the checkpoint was chosen),
and the hash of every dependency and output as recorded in that revision's dvc.lock. Each
run's per-image predictions are read at its own revision with `dvc.api.read`, from the local
DVC cache or, after `dvc exp pull` / `dvc pull`, the remote.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from varireal.settings.study import StudySettings
from varireal.study.labels import check_labels
from varireal.study.runs import METRICS, PARAMS_FILES, PREDICTIONS, Run, StudyError, merged_params

# Experiments that have no results yet (dvc exp show's executor states).
UNFINISHED = ("queued", "running", "failed")


def exp_show(repo: Path, revs: tuple[str, ...] = (), all_branches: bool = False) -> list[dict]:
    """`dvc exp show --json` of the repository: HEAD and its experiments, or those of `revs` (each a
    baseline commit, branch or tag) and, with all_branches, of every branch tip."""
    selection = [arg for rev in revs for arg in ("--rev", rev)] + (["--all-branches"] if all_branches else [])
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", *selection], cwd=repo, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StudyError(f"dvc exp show {' '.join(selection)} failed in {repo}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def runs_from_exp_show(entries: list[dict]) -> tuple[list[Run], list[str]]:
    """The finished runs in `dvc exp show --json` output, and a note per run left out (queued, failed).

    One revision is one run: a commit two branches point at, or an experiment promoted to a branch
    (`dvc exp branch`, as `varireal grid` makes baselines) and listed both ways, counts once, under the
    branch's name.
    """
    runs: dict[str, Run] = {}  # by rev
    notes = []
    for entry in entries:
        if entry["rev"] == "workspace":
            continue  # the workspace is HEAD or the last experiment run in it, never a run of its own
        label = entry.get("name") or entry["rev"][:7]
        baseline = _run(entry, label, label)
        if baseline is None:
            notes.append(f"baseline {label}: no results ({_error(entry)})")
        elif baseline.rev in runs:
            runs[baseline.rev].name = runs[baseline.rev].baseline = label  # a promoted experiment
        else:
            runs[baseline.rev] = baseline
        for experiment in entry.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state")
            name = experiment.get("name") or experiment["revs"][0]["rev"][:7]
            if state in UNFINISHED:
                notes.append(f"experiment {name}: {state}, left out")
                continue
            for revision in experiment["revs"]:
                run = _run(revision, revision.get("name") or name, label)
                if run is None:
                    notes.append(f"experiment {name}: no results ({_error(revision)}), left out")
                elif run.rev not in runs:
                    runs[run.rev] = run
    return list(runs.values()), notes


def _run(state: dict, name: str, baseline: str) -> Run | None:
    data = state.get("data")
    if not data or state.get("error"):
        return None
    files = {name: (entry or {}).get("data") for name, entry in (data.get("params") or {}).items()}
    if files.get("params.yaml") is None:
        return None
    deps = {path: dep["hash"] for path, dep in (data.get("deps") or {}).items() if dep.get("hash")}
    metrics = ((data.get("metrics") or {}).get(METRICS) or {}).get("data") or {}
    return Run(name=name, rev=data["rev"], params=merged_params(files), deps=deps, metrics=metrics, baseline=baseline)


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


def collect(
    repo: str | Path = ".", exclude: tuple[str, ...] = (), revs: tuple[str, ...] = (), all_branches: bool = False
) -> tuple[list[Run], list[str]]:
    """Every finished run of the baselines (HEAD, or `revs` and with all_branches every branch tip) and
    their experiments, with its predictions, and a note per run left out.

    Left out: `exclude` (experiment names or rev prefixes), unfinished experiments, and runs
    whose predictions are neither in the cache nor on the remote (the note says how to get them).
    A run whose params.yaml disagrees with what it recorded is an error (varireal.study.labels).
    """
    repo = Path(repo)
    runs, notes = runs_from_exp_show(exp_show(repo, revs, all_branches))
    chosen = []
    for run in runs:
        if any(run.name == x or run.rev.startswith(x) for x in exclude):
            notes.append(f"{run.name}: excluded (--exclude)")
            continue
        chosen.append(run)
    check_labels(chosen, repo)
    kept = []
    for run in chosen:
        try:
            run.predictions = read_predictions(repo, run.rev, run.name)
        except StudyError as err:
            notes.append(f"left out: {err}")
            continue
        kept.append(run)
    return kept, notes


def params_at(repo: str | Path, rev: str = "HEAD") -> dict[str, Any] | None:
    """The params of a commit (params.yaml and method.yaml), flattened; None where it has no params.yaml
    (or there is no commit)."""
    files = {}
    for name in PARAMS_FILES:
        result = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=repo, capture_output=True, text=True)
        if result.returncode == 0:
            files[name] = _yaml(result.stdout, f"{name} at {rev}")
    return merged_params(files) if "params.yaml" in files else None


def study_settings(params_file: str | Path) -> StudySettings:
    """The `study:` section (the margin, level and power claims are tested at) of params.yaml or of
    method.yaml beside it; the defaults of StudySettings where neither has one."""
    path = Path(params_file)
    sections = [
        (file, tree["study"])
        for file in (path, path.with_name("method.yaml"))
        if file.is_file()
        and isinstance(tree := _yaml(file.read_text(encoding="utf-8"), str(file)), dict)
        and "study" in tree
    ]
    if not sections:
        return StudySettings()
    file, section = sections[0]
    if not isinstance(section, dict):
        raise StudyError(f"{file}: study: expected a mapping (margin, level, power, max_seeds); got {section!r}")
    try:
        return StudySettings(**section)
    except ValidationError as err:
        problems = "; ".join(
            f"study.{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()
        )
        raise StudyError(f"{file}: {problems}") from None


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StudyError(f"{where}: unreadable ({err})") from None
