"""The whole table: every dataset's runs side by side, one table per procedure.

Runs are grouped by dataset (columns, never pooled) and by procedure (the values of the declared
switches, varireal.study.procedure). Within a dataset, runs may differ in a switch only when the
user compares it (`--compare KEY`); each procedure then gets its own table, and each claim its
verdict under each procedure side by side. Every other difference is refused, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from varireal.settings.study import StudySettings
from varireal.study.claims import NO_RUN, OPEN, claim_verdicts
from varireal.study.procedure import (
    Procedure,
    compared_keys,
    procedure_of,
    reference_count,
    short,
    switch_keys,
    yaml_value,
)
from varireal.study.runs import KNOBS, SEED, STUDY, Run, StudyError
from varireal.study.table import Study, build_study, check_comparable
from varireal.vocabulary import DATASETS

PIPELINE_DATA = "data/"  # stage outputs: made by the params and code compared, so not compared across procedures


@dataclass
class Studies:
    """Every table: one Study per (procedure, dataset) with runs."""

    by: dict[tuple[Procedure, str], Study]
    procedures: list[Procedure]  # the paper's procedure (most switches at the reference's value) first
    datasets: list[str]  # in the vocabulary's order
    compared: tuple[str, ...]  # the switch keys compared (--compare)
    settings: StudySettings
    context: dict[str, str]  # what every table shares
    notes: list[str] = field(default_factory=list)
    # per procedure: `key=value` of every param all its runs share that is not params.yaml's (HEAD) value
    not_default: dict[Procedure, list[str]] = field(default_factory=dict)

    def study(self, procedure: Procedure, dataset: str) -> Study | None:
        return self.by.get((procedure, dataset))


def build_studies(
    runs: list[Run],
    notes: list[str] = (),
    compare: tuple[str, ...] = (),
    resamples: int = 10_000,
    seed: int = 0,
    settings: StudySettings = StudySettings(),
    defaults: Mapping[str, Any] | None = None,
) -> Studies:
    """Check and group the runs, and build each (procedure, dataset) table.

    defaults: params.yaml at HEAD, flattened; the params every run of a table shares and that differ
    from it are named above that table (None: not named).
    """
    if not runs:
        raise StudyError("no finished run: run the grid first (varireal grid; dvc exp run --run-all)")
    profiles = {str(run.params.get("profile")) for run in runs}
    _refuse_differences(runs, ["profile"], "lay out side by side runs of different profiles")
    compared = compared_keys(compare, profiles)
    switches = tuple(switch_keys(next(iter(profiles))))
    fixed = [key for key in switches if key not in compared]
    _refuse_differences(runs, fixed, "lay out runs of different procedures", hint=True)
    by_dataset: dict[str, list[Run]] = {}
    for run in runs:
        by_dataset.setdefault(str(run.params.get("dataset")), []).append(run)
    studies: dict[tuple[Procedure, str], Study] = {}
    for dataset, dataset_runs in by_dataset.items():
        check_comparable(dataset_runs, _across_procedures(compared, dataset_runs), switches)
        for procedure, group in _by_procedure(dataset_runs).items():
            studies[(procedure, dataset)] = build_study(group, [], resamples, seed, settings, switches)
    procedures = sorted({procedure for procedure, _ in studies}, key=lambda p: (-reference_count(p), repr(p)))
    first = runs[0]
    context = {
        "profile": str(first.params.get("profile")),
        "runs": f"{len(runs)}, from {', '.join(sorted({run.baseline or run.name for run in runs}))} and their experiments",
        "claims": f"margin {settings.margin:g} points, level {settings.level:g} (one-sided tests, Holm over each "
        f"claim's rows; intervals {100 * (1 - 2 * settings.level):g}%), power {settings.power:g} (params.yaml `study:`)",
        "bootstrap": f"{resamples} resamples of the test images, seed {seed}",
    }
    if compared:
        context["procedure switches compared"] = ", ".join(compared)
    duplicates = [note for study in studies.values() for note in study.notes]
    return Studies(
        by=studies,
        procedures=procedures,
        datasets=sorted(
            by_dataset, key=lambda name: (DATASETS.index(name) if name in DATASETS else len(DATASETS), name)
        ),
        compared=compared,
        settings=settings,
        context=context,
        notes=[*notes, *duplicates, *_dataset_differences(by_dataset)],
        not_default={p: _not_default([r for r in runs if procedure_of(r) == p], defaults) for p in procedures},
    )


def _across_procedures(compared: tuple[str, ...], runs: list[Run]) -> frozenset[str]:
    """Identity keys a dataset's runs may differ in when procedures are compared: the compared params,
    the stage outputs they change, and (the protocol compared) how the checkpoint was chosen."""
    if not compared:
        return frozenset()
    outputs = {f"dep {path}" for run in runs for path in run.deps if path.startswith(PIPELINE_DATA)}
    checkpoint = {"checkpoint"} if any(key.startswith("protocol.") for key in compared) else set()
    return frozenset({f"param {key}" for key in compared} | outputs | checkpoint)


def _by_procedure(runs: list[Run]) -> dict[Procedure, list[Run]]:
    groups: dict[Procedure, list[Run]] = {}
    for run in runs:
        groups.setdefault(procedure_of(run), []).append(run)
    return groups


def _refuse_differences(runs: list[Run], keys: list[str], what: str, hint: bool = False) -> None:
    lines = []
    for key in keys:
        by_value: dict[str, list[str]] = {}
        for run in runs:
            by_value.setdefault(repr(run.params.get(key)), []).append(run.name)
        if len(by_value) > 1:
            groups = "; ".join(f"{value} in {', '.join(names)}" for value, names in by_value.items())
            lines.append(f"  param {key}: {groups}")
    if lines:
        way_out = (
            "\ncompare procedures with `varireal study "
            + " ".join(f"--compare {line.split()[1].rstrip(':')}" for line in lines)
            + "` (one table per procedure)"
            if hint
            else ""
        )
        raise StudyError(
            f"refusing to {what}:\n" + "\n".join(lines) + way_out + "; or leave runs out with --exclude NAME"
        )


def _not_default(runs: list[Run], defaults: Mapping[str, Any] | None) -> list[str]:
    """`key=value` of the params all `runs` share that differ from `defaults` (knobs, seed, dataset and
    `study:` left out: they are the table's rows and columns)."""
    if defaults is None or not runs:
        return []
    skipped = {*KNOBS, SEED, "dataset"}
    return [
        f"{key}={yaml_value(value)}"
        for key, value in sorted(runs[0].params.items())
        if key not in skipped
        and not key.startswith(STUDY)
        and all(run.params.get(key) == value for run in runs)
        and defaults.get(key) != value
    ]


def _dataset_differences(by_dataset: dict[str, list[Run]]) -> list[str]:
    """A note per dataset whose runs differ from the first dataset's in a param or code (never pooled,
    so not refused; but the columns then do not share their method)."""
    names = list(by_dataset)
    notes = []
    first = by_dataset[names[0]][0]
    for name in names[1:]:
        other = by_dataset[name][0]
        differ = sorted(
            key
            for key in set(first.params) | set(other.params)
            if key not in {*KNOBS, SEED, "dataset"}
            and not key.startswith(STUDY)
            and first.params.get(key) != other.params.get(key)
        )
        code = sorted(
            path
            for path in set(first.deps) | set(other.deps)
            if not path.startswith(PIPELINE_DATA) and first.deps.get(path) != other.deps.get(path)
        )
        if differ or code:
            shown = ", ".join([*(f"param {k}" for k in differ[:8]), *(f"code {p}" for p in code[:8])])
            more = len(differ) + len(code) - min(len(differ), 8) - min(len(code), 8)
            notes.append(
                f"{name}'s runs differ from {names[0]}'s in {shown}{f' and {more} more' if more else ''}: "
                "side by side, never pooled"
            )
    return notes


def survival(studies: Studies) -> pd.DataFrame:
    """One row per (claim, dataset): its verdict under each procedure, and whether the conclusion
    survives the corrections (the same verdict under every procedure)."""
    rows = []
    for dataset in studies.datasets:
        verdicts = {}
        for procedure in studies.procedures:
            study = studies.study(procedure, dataset)
            verdicts[procedure] = (
                claim_verdicts(study.claims, studies.settings.margin).set_index("claim")["verdict"]
                if study is not None
                else None
            )
        for claim in next(v for v in verdicts.values() if v is not None).index:
            got = [v[claim] if v is not None else NO_RUN for v in verdicts.values()]
            if any(verdict in (OPEN, NO_RUN) for verdict in got):
                survives = "not decided"
            else:
                survives = "yes" if len(set(got)) == 1 else "no"
            heads = [short(procedure, studies.compared) for procedure in verdicts]
            rows.append({"claim": claim, "dataset": dataset, **dict(zip(heads, got)), "survives": survives})
    return pd.DataFrame(rows)
