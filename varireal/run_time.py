"""How long `dvc repro` takes on a machine that was measured: per stage, a fixed part and a part per unit.

A stage's fixed part is what it pays whatever the data: DVC's bookkeeping, the Python process, imports, the
models it loads (and, for `models`, builds). Its variable part is seconds per unit of its work (real images,
candidates, optimizer steps). `python -m benchmarks.pipeline` measures both by running the whole pipeline
at two sizes of the demo dataset and fitting a line per stage; `varireal plan` multiplies them out for the
params at hand. Units are what the plan counts (`stage_work`), so the fit and the estimate agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES


@dataclass(frozen=True)
class Work:
    """How much of its unit one stage does."""

    unit: str
    count: float


@dataclass(frozen=True)
class StageCost:
    """Seconds of one stage: fixed + per_unit x units (a line through two measured runs)."""

    fixed: float
    per_unit: float
    unit: str

    def seconds(self, count: float) -> float:
        return self.fixed + self.per_unit * count


def stage_work(real: int, test: int, candidates: dict[tuple[str, str], float], train_steps: int) -> dict[str, Work]:
    """Each dvc.yaml stage's work: `real` training images, `test` images, candidates per (attribute,
    feasibility) set and the run's optimizer steps. Models, prompts and galleries do the same whatever the
    data (per class, at most, and the classes are the dataset's)."""
    work = {
        "fetch": Work("real training images", real),
        "models": Work("none", 0),
        "masks": Work("real training images", real),
        "prompts": Work("none", 0),
    }
    for stage in ("edit", "filter"):
        work |= {f"{stage}@{a}-{f}": Work("candidates", candidates[a, f]) for a in ATTRIBUTES for f in FEASIBILITIES}
    work |= {f"gallery@{a}": Work("none", 0) for a in ATTRIBUTES}
    return work | {"train": Work("optimizer steps", train_steps), "evaluate": Work("test images", test)}


def fit(small: tuple[float, float], large: tuple[float, float], unit: str) -> StageCost:
    """The line through (units, seconds) of two runs. A stage whose units did not change, or whose time fell
    as its units grew (noise larger than its work), is all fixed: the mean of the two."""
    (u1, t1), (u2, t2) = small, large
    if u2 == u1 or t2 <= t1:
        return StageCost(round((t1 + t2) / 2, 3), 0.0, unit)
    per_unit = (t2 - t1) / (u2 - u1)
    return StageCost(round(max(0.0, t1 - per_unit * u1), 3), round(per_unit, 6), unit)


def read_costs(rates: dict[str, Any], rates_file: str) -> tuple[dict[str, StageCost], float] | None:
    """The rates file's `stages` and `dvc_start_seconds`, or None when the pipeline was not measured."""
    if "stages" not in rates:
        return None
    try:
        costs = {name: StageCost(**entry) for name, entry in rates["stages"].items()}
        return costs, float(rates["dvc_start_seconds"])
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise ValueError(
            f"{rates_file}: expected `stages` of {{fixed, per_unit, unit}} per stage and `dvc_start_seconds` "
            f"(python -m benchmarks.pipeline writes them); {type(err).__name__}: {err}"
        ) from None


def run_lines(work: dict[str, Work], rates: dict[str, Any], rates_file: str, profile: str) -> list[str]:
    """The whole run's seconds on the measured machine, per stage, fixed costs included."""
    measured = read_costs(rates, rates_file)
    if measured is None:
        return [
            f"the whole run: no stage timings in {rates_file}; `python -m benchmarks.pipeline -S profile={profile} "
            f"--rates-out {rates_file}` times every stage on the demo dataset (give it a prompts source that covers "
            "the demo where the profile's does not)"
        ]
    costs, start = measured
    missing = sorted(set(work) - set(costs))
    if missing:
        return [f"the whole run: {rates_file} has no timing for stage(s) {', '.join(missing)}; measure again"]
    seconds = {name: costs[name].seconds(w.count) for name, w in work.items()}
    total = start + sum(seconds.values())
    return [
        f"the whole run ({rates_file}: {rates.get('stages_measured', '?')}): per stage, fixed + per unit x units",
        f"  {'stage':<28}{'fixed s':>9}{'units':>10}  {'unit':<22}{'s/unit':>9}{'s':>9}",
        *[
            f"  {name:<28}{costs[name].fixed:>9.1f}{w.count:>10,.0f}  {w.unit:<22}"
            f"{costs[name].per_unit:>9.4f}{seconds[name]:>9.1f}"
            for name, w in work.items()
        ],
        f"  {'dvc start':<28}{start:>9.1f}{'':>50}{start:>9.1f}",
        f"  {'total':<28}{'':>59}{total:>9.1f}  ({total / 60:.1f} min on the measured machine)",
    ]
