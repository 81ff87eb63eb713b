"""The study's files: the table (markdown and csv), the paired comparisons and the figure."""

from __future__ import annotations

from pathlib import Path

from varireal.io import write_table, write_text
from varireal.study.figure import save_figure
from varireal.study.table import Study, markdown


def write_study(study: Study, out_dir: str | Path) -> None:
    """table.md, table.csv, comparisons.csv and figure.png in out_dir."""
    out_dir = Path(out_dir)
    write_text(out_dir / "table.md", markdown(study))
    write_table(out_dir / "table.csv", study.cells)
    write_table(out_dir / "comparisons.csv", study.comparisons)
    save_figure(study, out_dir / "figure.png")
