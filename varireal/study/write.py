"""The study's files: table.md; table.csv, comparisons.csv and claims.csv (a row per cell, comparison
or claim row of every dataset and procedure); a figure per procedure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from varireal.io import write_table, write_text
from varireal.study.figure import save_figure
from varireal.study.markdown import markdown
from varireal.study.procedure import Procedure, describe, slug
from varireal.study.whole import Studies


def figure_name(studies: Studies, procedure: Procedure) -> str:
    """figure.png for a single procedure; figure-<switches>.png for each of several."""
    return "figure.png" if len(studies.procedures) == 1 else f"figure-{slug(procedure, studies.compared)}.png"


def long_table(studies: Studies, part: str) -> pd.DataFrame:
    """One of each Study's frames (cells, comparisons, claims) for every (procedure, dataset), stacked,
    with the procedure and the dataset as the first columns."""
    frames = []
    for procedure in studies.procedures:
        for dataset in studies.datasets:
            study = studies.study(procedure, dataset)
            if study is not None:
                frame = getattr(study, part)
                frames.append(
                    frame.assign(procedure=describe(procedure), dataset=dataset)[
                        ["procedure", "dataset", *frame.columns]
                    ]
                )
    return pd.concat(frames, ignore_index=True)


def write_study(studies: Studies, out_dir: str | Path) -> list[Path]:
    """Write every file into out_dir (an earlier run's figures are removed first); returns the figures."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("figure*.png"):
        old.unlink()  # a figure of a procedure no longer in the study would read as current
    write_text(out_dir / "table.md", markdown(studies))
    write_table(out_dir / "table.csv", long_table(studies, "cells"))
    write_table(out_dir / "comparisons.csv", long_table(studies, "comparisons"))
    write_table(out_dir / "claims.csv", long_table(studies, "claims"))
    figures = []
    for procedure in studies.procedures:
        path = out_dir / figure_name(studies, procedure)
        save_figure(studies, procedure, path)
        figures.append(path)
    return figures
