"""One dataset's column of the paper's table under one procedure: top-1 per cell over seeds, the
paired comparisons and the paper's claims (varireal.study.whole lays the columns side by side).

A cell pools the seeds of one (attr, train.data, feas), the real-only baseline one more; a
comparison pairs two cells of an attribute and data mode seed by seed on the same test images
(feasible - infeasible, feasible - mixed: positive means feasible is better).

Runs are pooled or paired only if they differ in nothing but those knobs and the seed:
`check_comparable` refuses anything else, naming the keys and the runs. How each run's
checkpoint was chosen (best_test, final, best_val) is one of those keys, and a table of
best_test numbers says above it that they are optimistic (collect.OPTIMISTIC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from varireal.settings.study import StudySettings
from varireal.study.cells import DATA_MODES, CellKey, all_cells, cell_key, describe
from varireal.study.claims import claim_table
from varireal.study.runs import CHECKPOINT_NOTES, KNOBS, SEED, Run, StudyError
from varireal.study.stats import holm, paired, seed_mean
from varireal.vocabulary import ATTRIBUTES

COMPARED = (("feasible", "infeasible"), ("feasible", "mixed"))


@dataclass
class Study:
    """One dataset under one procedure: what its column of table.md, its rows of the csv files and its
    panels of the figure show."""

    cells: pd.DataFrame  # one row per cell of the paper's table, run or not
    comparisons: pd.DataFrame  # one row per comparison, with or without runs
    missing: list[CellKey]  # cells without a run
    context: dict[str, str]  # what every run shares: profile, dataset, test images, hashes
    notes: list[str] = field(default_factory=list)
    checkpoint: str = "final"  # how every run's weights were chosen: best_test | final | best_val
    claims: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per (claim, row): claims.claim_table
    baselines: list[str] = field(default_factory=list)  # the commits its runs derive from (branch or short sha)

    @property
    def optimistic(self) -> bool:
        """Whether the numbers come from weights chosen on the test split (the paper's way)."""
        return self.checkpoint == "best_test"


def check_comparable(runs: list[Run], ignore: frozenset[str] = frozenset(), switches: tuple[str, ...] = ()) -> None:
    """Refuse runs that differ in anything but the knobs (attr, feas, train.data) and the seed, and the
    identity keys in `ignore` (`param KEY`, `dep PATH`, `checkpoint`). A differing key among
    `switches` (declared procedure switches) is named with `--compare`, the way to compare it."""
    if not runs:
        raise StudyError("no finished run: run the grid first (dvc exp run --queue ...; dvc queue start)")
    identities = [run.identity() for run in runs]
    keys = sorted(set().union(*identities) - ignore)
    lines = []
    for key in keys:
        by_value: dict[str, list[str]] = {}
        for run, identity in zip(runs, identities):
            by_value.setdefault(_show(identity.get(key, "absent")), []).append(run.name)
        if len(by_value) > 1:
            groups = "; ".join(f"{value} in {', '.join(names)}" for value, names in by_value.items())
            lines.append(f"  {key}: {groups}")
    if lines:
        knobs = ", ".join((*KNOBS, SEED))
        why = [_CHECKPOINTS_DIFFER] if any(line.startswith("  checkpoint:") for line in lines) else []
        compare = [key for key in switches if any(line.startswith(f"  param {key}:") for line in lines)]
        if compare:
            why.append(
                "  ("
                + ", ".join(compare)
                + " is a procedure switch: `varireal study "
                + " ".join(f"--compare {key}" for key in compare)
                + "` makes one table per procedure)"
            )
        raise StudyError(
            f"refusing to pool or pair runs that differ in more than {knobs}:\n"
            + "\n".join(lines + why)
            + "\nleave runs out with `varireal study --exclude NAME`, or remove them (`dvc exp remove NAME`)"
        )


_CHECKPOINTS_DIFFER = (
    "  (the checkpoint is how a run's weights were chosen, reports/eval/metrics.json `checkpoint`: "
    + "; ".join(f"{choice}: {note}" for choice, note in CHECKPOINT_NOTES.items())
    + "; numbers chosen differently are never pooled in a cell or paired)"
)


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def group_cells(runs: list[Run]) -> tuple[dict[CellKey, dict[int, Run]], list[str]]:
    """Runs by cell and seed; a second run of the same cell and seed is left out with a note."""
    cells: dict[CellKey, dict[int, Run]] = {}
    notes = []
    for run in runs:
        key, seed = cell_key(run), int(run.params[SEED])
        seeds = cells.setdefault(key, {})
        if seed not in seeds:
            seeds[seed] = run
            continue
        kept = seeds[seed]
        differ = int((kept.predictions["correct"].to_numpy() != run.predictions["correct"].to_numpy()).sum())
        same = (
            "identical predictions"
            if differ == 0
            else f"predictions differ on {differ} images: training is not bit-reproducible here"
        )
        notes.append(
            f"{describe(key)}, seed {seed}: {kept.name} and {run.name} are the same run ({same}); {kept.name} used"
        )
    return cells, notes


def correctness(runs: dict[int, Run], seeds: list[int]) -> np.ndarray:
    """(seeds, images) booleans of the given seeds, images in the (shared) test split order."""
    return np.stack([runs[seed].predictions["correct"].to_numpy(dtype=bool) for seed in seeds])


def cell_table(cells: dict[CellKey, dict[int, Run]]) -> pd.DataFrame:
    rows = []
    for key in all_cells():
        attr, data, feas = key
        runs = cells.get(key, {})
        row = {
            "attr": attr,
            "data": data,
            "feas": feas,
            "seeds": len(runs),
            "top1": np.nan,
            "low": np.nan,
            "high": np.nan,
            "seed_list": " ".join(str(s) for s in sorted(runs)),
            "runs": " ".join(runs[s].name for s in sorted(runs)),
            "checkpoint": " ".join(sorted({run.checkpoint for run in runs.values()})),
        }  # one choice: check_comparable
        if runs:
            top1 = [100 * runs[s].predictions["correct"].mean() for s in sorted(runs)]
            summary = seed_mean(top1)
            row.update(top1=summary.mean, low=summary.low, high=summary.high)
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(cells: dict[CellKey, dict[int, Run]], resamples: int, seed: int) -> pd.DataFrame:
    rows = []
    for attr in ATTRIBUTES:
        for data in DATA_MODES:
            for a, b in COMPARED:
                runs_a, runs_b = cells.get((attr, data, a), {}), cells.get((attr, data, b), {})
                seeds = sorted(set(runs_a) & set(runs_b))
                row = {
                    "attr": attr,
                    "data": data,
                    "a": a,
                    "b": b,
                    "seeds": len(seeds),
                    "seed_list": " ".join(map(str, seeds)),
                }
                if seeds:
                    result = paired(correctness(runs_a, seeds), correctness(runs_b, seeds), resamples, seed)
                    row.update(
                        images=result.images,
                        difference=result.difference,
                        low=result.low,
                        high=result.high,
                        a_only=result.a_only,
                        b_only=result.b_only,
                        p_value=result.p_value,
                        mde=result.mde,
                    )
                rows.append(row)
    table = pd.DataFrame(rows).reindex(
        columns=[
            "attr",
            "data",
            "a",
            "b",
            "seeds",
            "seed_list",
            "images",
            "difference",
            "low",
            "high",
            "a_only",
            "b_only",
            "p_value",
            "p_holm",
            "mde",
        ]
    )
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=np.float64))
    counts = ["images", "a_only", "b_only"]
    table[counts] = table[counts].astype("Int64")  # counts stay integers beside the rows without runs
    return table


def build_study(
    runs: list[Run],
    notes: list[str] = (),
    resamples: int = 10_000,
    seed: int = 0,
    settings: StudySettings = StudySettings(),
    switches: tuple[str, ...] = (),
) -> Study:
    """Check the runs (one dataset, one procedure), group them into cells, and compute the table, the
    comparisons and the claims. `switches`: the declared procedure switches, for the refusal's hint."""
    check_comparable(runs, switches=switches)
    cells, duplicates = group_cells(runs)
    first = runs[0]
    profile = str(first.params.get("profile"))
    context = {
        "profile": profile,
        "dataset": str(first.params.get("dataset")),
        "protocol": str(first.params.get(f"protocol.{profile}", "heldout_val (before the param existed)")),
        "checkpoint": f"{first.checkpoint}: {CHECKPOINT_NOTES[first.checkpoint]}",
        "test images": str(len(first.predictions)),
        "test split": first.test_split,
        "model lock": str(first.model_lock or "not recorded")[:16],
        "runs": str(len(runs)),
        "bootstrap": f"{resamples} resamples of the test images, seed {seed}",
    }
    return Study(
        cells=cell_table(cells),
        comparisons=comparison_table(cells, resamples, seed),
        missing=[key for key in all_cells() if key not in cells],
        context=context,
        notes=[*notes, *duplicates],
        checkpoint=first.checkpoint,
        claims=claim_table(cells, settings),
        baselines=sorted({run.baseline or run.name for run in runs}),
    )
