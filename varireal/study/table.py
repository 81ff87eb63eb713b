"""The paper's table from a set of runs: top-1 per cell over seeds, and paired comparisons.

Rows are attribute x data mode (synthetic + real, synthetic only) plus the real-only baseline;
columns are the feasibility of the synthetic images. A cell pools the seeds of one
(attr, train.data, feas); a comparison pairs two cells of a row seed by seed on the same test
images (feasible - infeasible, feasible - mixed: positive means feasible is better).

Runs are pooled or paired only if they differ in nothing but those knobs and the seed:
`check_comparable` refuses anything else, naming the keys and the runs. How each run's
checkpoint was chosen (best_test, final, best_val) is one of those keys, and a table of
best_test numbers says above it that they are optimistic (collect.OPTIMISTIC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from varireal.study.collect import CHECKPOINT_NOTES, KNOBS, OPTIMISTIC, SEED, Run, StudyError
from varireal.study.stats import holm, paired, seed_mean
from varireal.vocabulary import ATTRIBUTES, TRAIN_FEASIBILITIES

DATA_MODES = ("synthetic_real", "synthetic_only")
BASELINE = "real_only"
COMPARED = (("feasible", "infeasible"), ("feasible", "mixed"))
MODE_NAMES = {"synthetic_real": "synthetic + real", "synthetic_only": "synthetic only", "real_only": "real only"}
NONE = "-"  # attr and feas of the baseline: it trains on no synthetic image

CellKey = tuple[str, str, str]  # (attr, train.data, feas); the baseline is (NONE, real_only, NONE)


@dataclass
class Study:
    """Everything table.md, table.csv, comparisons.csv and the figure show."""

    cells: pd.DataFrame  # one row per cell of the paper's table, run or not
    comparisons: pd.DataFrame  # one row per comparison, with or without runs
    missing: list[CellKey]  # cells without a run
    context: dict[str, str]  # what every run shares: profile, dataset, test images, hashes
    notes: list[str] = field(default_factory=list)
    checkpoint: str = "final"  # how every run's weights were chosen: best_test | final | best_val

    @property
    def optimistic(self) -> bool:
        """Whether the numbers come from weights chosen on the test split (the paper's way)."""
        return self.checkpoint == "best_test"


def cell_key(run: Run) -> CellKey:
    data = run.params.get("train.data")
    if data == BASELINE:
        return (NONE, BASELINE, NONE)  # attr and feas select no image here: one baseline per seed
    return (str(run.params.get("attr")), str(data), str(run.params.get("feas")))


def all_cells() -> list[CellKey]:
    grid = [(attr, data, feas) for attr in ATTRIBUTES for data in DATA_MODES for feas in TRAIN_FEASIBILITIES]
    return grid + [(NONE, BASELINE, NONE)]


def check_comparable(runs: list[Run]) -> None:
    """Refuse runs that differ in anything but the knobs (attr, feas, train.data) and the seed."""
    if not runs:
        raise StudyError("no finished run: run the grid first (dvc exp run --queue ...; dvc queue start)")
    identities = [run.identity() for run in runs]
    keys = sorted(set().union(*identities))
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


def describe(key: CellKey) -> str:
    attr, data, feas = key
    return "real-only baseline" if data == BASELINE else f"{attr} / {MODE_NAMES[data]} / {feas}"


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


def build_study(runs: list[Run], notes: list[str] = (), resamples: int = 10_000, seed: int = 0) -> Study:
    """Check the runs, group them into cells, and compute the table and the comparisons."""
    check_comparable(runs)
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
    )


# --- writing -----------------------------------------------------------------------------------------


def _cell_text(row) -> str:
    if not row.seeds:
        return "no run"
    if row.seeds == 1:
        return f"{row.top1:.1f} (1 seed)"
    return f"{row.top1:.1f} ({row.low:.1f} to {row.high:.1f}), {row.seeds} seeds"


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "\u2212")


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def table_markdown(cells: pd.DataFrame) -> list[str]:
    lines = ["| attribute | data | feasible | infeasible | mixed |", "|---|---|---|---|---|"]
    for attr in ATTRIBUTES:
        for data in DATA_MODES:
            row = cells[(cells["attr"] == attr) & (cells["data"] == data)].set_index("feas")
            values = [_cell_text(row.loc[feas]) for feas in TRAIN_FEASIBILITIES]
            lines.append(f"| {attr} | {MODE_NAMES[data]} | " + " | ".join(values) + " |")
    baseline = cells[cells["data"] == BASELINE].iloc[0]
    lines.append(f"| (none) | {MODE_NAMES[BASELINE]} | {_cell_text(baseline)} | | |")  # one value: no synthetic image
    return lines


def comparisons_markdown(comparisons: pd.DataFrame) -> list[str]:
    lines = [
        "| attribute | data | comparison | seeds | difference (points) | 95% bootstrap interval | McNemar p | Holm p | MDE (points) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in comparisons.itertuples():
        head = f"| {row.attr} | {MODE_NAMES[row.data]} | {row.a} \u2212 {row.b} |"
        if not row.seeds:
            lines.append(head + " 0 | no paired run | | | | |")
            continue
        lines.append(
            f"{head} {row.seeds} | {_signed(row.difference)} | {_signed(row.low)} to {_signed(row.high)} | "
            f"{_p(row.p_value)} | {_p(row.p_holm)} | {row.mde:.1f} |"
        )
    return lines


def queue_commands(missing: list[CellKey], cells: pd.DataFrame) -> list[str]:
    """`dvc exp run --queue` lines (DVC's sweep syntax) that fill the missing cells, one per table row,
    with the seeds the other cells use."""
    used = sorted({int(s) for text in cells["seed_list"] for s in text.split()}) or [0]
    seeds = ",".join(map(str, used))
    rows: dict[tuple[str, str], list[str]] = {}
    for attr, data, feas in missing:
        rows.setdefault((attr, data), []).append(feas)
    commands = []
    for (attr, data), feasibilities in rows.items():
        knobs = (
            f"-S train.data={data}"
            if data == BASELINE
            else f"-S attr={attr} -S train.data={data} -S feas={','.join(feasibilities)}"
        )
        commands.append(f"dvc exp run --queue {knobs} -S train.seed={seeds}")
    return commands


def markdown(study: Study) -> str:
    warning = [f"**{OPTIMISTIC}**", ""] if study.optimistic else []  # above each table of such numbers
    lines = [
        "# The study table",
        "",
        *[f"- {key}: {value}" for key, value in study.context.items()],
        "",
        "Test top-1 (%) of LoRA-CLIP on the real test split: mean over seeds, 95% t interval, number of seeds.",
        "",
        *warning,
        *table_markdown(study.cells),
        "",
        "## Feasible against infeasible and mixed, paired image by image",
        "",
        "Seed s of one cell against seed s of the other on the same test images. points: mean difference of",
        "top-1 (positive: feasible is better); interval: paired bootstrap over test images; McNemar p: exact,",
        "two-sided, on the discordant (seed, image) pairs; Holm p: corrected over the comparisons with runs;",
        "MDE: the smallest difference this test set detects (alpha 0.05, power 0.8) at the observed discordance.",
        "",
        *warning,
        *comparisons_markdown(study.comparisons),
        "",
    ]
    if study.missing:
        lines += [
            "## No run yet",
            "",
            *[f"- {describe(key)}" for key in study.missing],
            "",
            "Queue them, then `dvc queue start` and `varireal study` again:",
            "",
            "```",
            *queue_commands(study.missing, study.cells),
            "```",
            "",
        ]
    if study.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in study.notes], ""]
    return "\n".join(lines) + "\n"
