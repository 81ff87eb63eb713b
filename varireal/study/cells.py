"""The cells of the paper's table: attribute x data mode x feasibility, plus the real-only baseline."""

from __future__ import annotations

from varireal.study.runs import Run
from varireal.vocabulary import ATTRIBUTES, TRAIN_FEASIBILITIES

DATA_MODES = ("synthetic_real", "synthetic_only")
BASELINE = "real_only"
MODE_NAMES = {"synthetic_real": "synthetic + real", "synthetic_only": "synthetic only", "real_only": "real only"}
NONE = "-"  # attr and feas of the baseline: it trains on no synthetic image

CellKey = tuple[str, str, str]  # (attr, train.data, feas); the baseline is (NONE, real_only, NONE)
BASELINE_CELL: CellKey = (NONE, BASELINE, NONE)


def cell_key(run: Run) -> CellKey:
    data = run.params.get("train.data")
    if data == BASELINE:
        return BASELINE_CELL  # attr and feas select no image here: one baseline per seed
    return (str(run.params.get("attr")), str(data), str(run.params.get("feas")))


def all_cells() -> list[CellKey]:
    """The table's rows in order: attribute, then data mode, then feasibility; the baseline last."""
    grid = [(attr, data, feas) for attr in ATTRIBUTES for data in DATA_MODES for feas in TRAIN_FEASIBILITIES]
    return grid + [BASELINE_CELL]


def describe(key: CellKey) -> str:
    attr, data, feas = key
    return "real-only baseline" if data == BASELINE else f"{attr} / {MODE_NAMES[data]} / {feas}"
