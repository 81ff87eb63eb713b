"""The paper's claims as hypotheses the table answers, each with a verdict.

The paper's findings (arXiv 2505.10551): top-1 differs between feasible and infeasible edits
"mostly less than 0.3 %"; background edits help, feasible or not; mixing feasible and infeasible
edits does no harm against pure sets; the attribute decides how much feasibility matters, texture
most. A non-significant difference is not evidence of no difference, so every claim is tested
against the margin (params.yaml `study.margin`, the paper's 0.3 points):

- a claim of *no difference* (equivalence) is supported when two one-sided tests (TOST) show the
  difference inside (-margin, +margin), contradicted when one shows it beyond the margin;
- a claim of *a difference* (superiority) is supported when a one-sided test shows it above the
  margin, contradicted when one shows it below.

Each row is one contrast of cells of the table, per (seed, image) in points, with the image as
the unit (stats.mean_test). The tests run at `study.level`, Holm-corrected over the rows of a
claim; a claim is supported when every row is, contradicted when any row is. A row neither way
is "not decided" and says what would decide it: more seeds, or more test images than the split has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from varireal.settings.study import StudySettings
from varireal.study.cells import BASELINE_CELL, DATA_MODES, MODE_NAMES, CellKey, describe
from varireal.study.runs import Run
from varireal.study.stats import holm, mean_test, needed_for
from varireal.vocabulary import ATTRIBUTES

Term = tuple[float, CellKey]  # weight x correctness of one cell

SUPPORTED, CONTRADICTED, OPEN, NO_RUN = "supported", "contradicted", "not decided", "no run"


@dataclass(frozen=True)
class Row:
    """One contrast a claim is tested on: the sum of weight x correctness over `terms`, or with `gaps`
    |first gap| - |second gap|, each gap oriented by the sign of its observed mean."""

    label: str
    terms: tuple[Term, ...] = ()
    gaps: tuple[tuple[Term, ...], ...] = ()

    def cells(self) -> list[CellKey]:
        return [key for _, key in (*self.terms, *(term for gap in self.gaps for term in gap))]


@dataclass(frozen=True)
class Claim:
    key: str
    says: str  # the claim in words, with {margin}
    kind: str  # equivalence | superiority
    rows: tuple[Row, ...]


def _difference(a: CellKey, b: CellKey) -> tuple[Term, ...]:
    return ((1.0, a), (-1.0, b))


def _row_name(attr: str, data: str) -> str:
    return f"{attr} / {MODE_NAMES[data]}"


def paper_claims() -> tuple[Claim, ...]:
    feasibility = tuple(
        Row(
            f"{_row_name(attr, data)}: feasible \u2212 infeasible",
            _difference((attr, data, "feasible"), (attr, data, "infeasible")),
        )
        for attr in ATTRIBUTES
        for data in DATA_MODES
    )
    background = tuple(
        Row(
            f"background / synthetic + real / {feas} \u2212 real only",
            _difference(("background", "synthetic_real", feas), BASELINE_CELL),
        )
        for feas in ("feasible", "infeasible")
    )
    mixed = tuple(
        Row(f"{_row_name(attr, data)}: mixed \u2212 {pure}", _difference((attr, data, "mixed"), (attr, data, pure)))
        for attr in ATTRIBUTES
        for data in DATA_MODES
        for pure in ("feasible", "infeasible")
    )
    texture = tuple(
        Row(
            f"{MODE_NAMES[data]}: size of texture's gap \u2212 size of {other}'s",
            gaps=(
                _difference(("texture", data, "feasible"), ("texture", data, "infeasible")),
                _difference((other, data, "feasible"), (other, data, "infeasible")),
            ),
        )
        for data in DATA_MODES
        for other in ATTRIBUTES
        if other != "texture"
    )
    return (
        Claim(
            "feasibility",
            "feasible and infeasible edits train equally well: feasible \u2212 infeasible within \u00b1{margin} points",
            "equivalence",
            feasibility,
        ),
        Claim(
            "background",
            "background edits beat real only, feasible and infeasible: by more than {margin} points",
            "superiority",
            background,
        ),
        Claim(
            "mixed",
            "mixed edits train as well as pure ones: mixed \u2212 feasible and mixed \u2212 infeasible within \u00b1{margin} points",
            "equivalence",
            mixed,
        ),
        Claim(
            "texture",
            "feasibility moves texture's accuracy most: the size of its feasible \u2212 infeasible gap exceeds each "
            "other attribute's by more than {margin} points",
            "superiority",
            texture,
        ),
    )


def contrast(row: Row, cells: dict[CellKey, dict[int, Run]]) -> tuple[list[int], np.ndarray] | None:
    """(seeds, per (seed, image) values in points) of a row, over the seeds every cell of it has; None
    when a cell has no run or no seed is shared."""
    runs = [cells.get(key, {}) for key in row.cells()]
    seeds = sorted(set.intersection(*(set(r) for r in runs))) if runs and all(runs) else []
    if not seeds:
        return None

    def part(terms: tuple[Term, ...]) -> np.ndarray:
        return sum(
            weight * np.stack([cells[key][s].predictions["correct"].to_numpy(dtype=np.float64) for s in seeds])
            for weight, key in terms
        )

    if row.terms:
        return seeds, 100 * part(row.terms)
    first, second = (part(gap) for gap in row.gaps)
    # |gap| by the observed direction of each gap (a data-dependent choice: read with the caveat in docs)
    return seeds, 100 * (np.sign(first.mean() or 1.0) * first - np.sign(second.mean() or 1.0) * second)


def claim_table(cells: dict[CellKey, dict[int, Run]], settings: StudySettings) -> pd.DataFrame:
    """One row per (claim, row): the contrast, its 1 - 2 level interval, both one-sided p-values
    (Holm over the claim's rows with runs), the verdict and what would decide it."""
    frames = [_claim_rows(claim, cells, settings) for claim in paper_claims()]
    return pd.concat(frames, ignore_index=True)


def _claim_rows(claim: Claim, cells: dict[CellKey, dict[int, Run]], settings: StudySettings) -> pd.DataFrame:
    margin, level = settings.margin, settings.level
    records, contrasts = [], {}
    for row in claim.rows:
        record = {"claim": claim.key, "kind": claim.kind, "row": row.label, "seeds": 0}
        found = contrast(row, cells)
        if found is not None:
            seeds, values = found
            test = mean_test(values)
            low, high = test.interval(level)
            if claim.kind == "equivalence":
                support = max(test.p_above(-margin), test.p_below(margin))  # TOST
                against = min(1.0, 2 * min(test.p_above(margin), test.p_below(-margin)))  # beyond, either side
                distance = abs(margin - abs(test.mean))
            else:
                support, against, distance = test.p_above(margin), test.p_below(margin), abs(test.mean - margin)
            contrasts[row.label] = (values, distance)
            record.update(
                seeds=len(seeds),
                seed_list=" ".join(map(str, seeds)),
                images=values.shape[1],
                difference=test.mean,
                low=low,
                high=high,
                p_support=support,
                p_contradict=against,
            )
        records.append(record)
    table = pd.DataFrame(records).reindex(columns=COLUMNS)
    table["p_support_holm"] = holm(table["p_support"].to_numpy(dtype=np.float64))
    table["p_contradict_holm"] = holm(table["p_contradict"].to_numpy(dtype=np.float64))
    table[["seeds", "images"]] = table[["seeds", "images"]].astype("Int64")
    table["verdict"] = [_verdict(row, level) for row in table.itertuples()]
    # what would decide an open row, at Bonferroni's level over the claim's tested rows (Holm's worst case)
    bonferroni = level / max(len(contrasts), 1)
    table["decide"] = [
        _decide(row, claim, cells, contrasts.get(row.row), settings, bonferroni) for row in table.itertuples()
    ]
    return table


COLUMNS = [
    "claim",
    "kind",
    "row",
    "seeds",
    "seed_list",
    "images",
    "difference",
    "low",
    "high",
    "p_support",
    "p_contradict",
    "p_support_holm",
    "p_contradict_holm",
    "verdict",
    "decide",
]


def _verdict(row, level: float) -> str:
    if not row.seeds:
        return NO_RUN
    if row.p_support_holm < level:
        return SUPPORTED
    if row.p_contradict_holm < level:
        return CONTRADICTED
    return OPEN


def _decide(
    row,
    claim: Claim,
    cells: dict[CellKey, dict[int, Run]],
    found: tuple[np.ndarray, float] | None,
    settings: StudySettings,
    level: float,
) -> str:
    if found is None:
        wanted = next(r for r in claim.rows if r.label == row.row)
        absent = [key for key in dict.fromkeys(wanted.cells()) if not cells.get(key)]
        return (
            "needs runs of " + "; ".join(describe(key) for key in absent)
            if absent
            else "needs a seed all its cells share"
        )
    if row.verdict != OPEN:
        return ""
    values, distance = found
    needed = needed_for(values, distance, level, settings.power, settings.max_seeds)
    if not needed:
        return "the difference sits on the margin: no grid decides it"
    if "seeds" in needed:
        return f"about {needed['seeds']} seeds"
    return f"about {needed['images']:,} test images (this test split has {row.images:,}); more seeds alone do not decide it"


def claim_verdicts(claims: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One row per claim: its verdict over its rows and how many rows went each way."""
    records = []
    for claim in paper_claims():
        rows = claims[claims["claim"] == claim.key]
        counts = rows["verdict"].value_counts()
        if counts.get(CONTRADICTED, 0):
            verdict = CONTRADICTED
        elif counts.get(SUPPORTED, 0) == len(rows):
            verdict = SUPPORTED
        elif counts.get(NO_RUN, 0) == len(rows):
            verdict = NO_RUN
        else:
            verdict = OPEN
        records.append(
            {
                "claim": claim.key,
                "says": claim.says.format(margin=margin),
                "verdict": verdict,
                "rows": len(rows),
                **{name: int(counts.get(name, 0)) for name in (SUPPORTED, CONTRADICTED, OPEN, NO_RUN)},
            }
        )
    return pd.DataFrame(records)
