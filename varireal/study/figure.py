"""The study's figures, one per procedure: for each dataset a row of two panels, top-1 per cell
(left) and the paired differences (right), with intervals.

Left: each cell of the table as a point at its mean top-1 over seeds, with its 95% t interval,
coloured by feasibility; the real-only baseline as a dashed line; a cell without runs as a grey
"no run" at the side of the panel away from that line. Right: each comparison as a point at its
mean difference (feasible - other) with its paired bootstrap interval, the grey band +-MDE (what
this test set cannot tell from zero) and the Holm-corrected p in a column right of the panel.
The title names the procedure (every switch and its value) and each row its checkpoint protocol.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from varireal.io import atomic_path  # noqa: E402
from varireal.study.cells import BASELINE, DATA_MODES, MODE_NAMES  # noqa: E402
from varireal.study.procedure import Procedure, describe  # noqa: E402
from varireal.study.runs import OPTIMISTIC  # noqa: E402
from varireal.study.table import Study  # noqa: E402
from varireal.study.whole import Studies  # noqa: E402
from varireal.vocabulary import TRAIN_FEASIBILITIES  # noqa: E402

NO_RUN_LABEL = "no run"

COLORS = {"feasible": "#1b7837", "infeasible": "#c51b7d", "mixed": "#2166ac"}
COMPARED_COLORS = {"infeasible": COLORS["infeasible"], "mixed": COLORS["mixed"]}


def _row_labels(frame) -> list[str]:
    return [f"{attr} · {MODE_NAMES[data]}" for attr, data in zip(frame["attr"], frame["data"])]


def _cells_panel(ax, study: Study) -> None:
    cells = study.cells[study.cells["data"].isin(DATA_MODES)]
    rows = cells[["attr", "data"]].drop_duplicates().reset_index(drop=True)
    offsets = dict(zip(TRAIN_FEASIBILITIES, (-0.22, 0.0, 0.22)))
    absent = []  # (y, feasibility) of the cells without runs, labelled once the x range is known
    for feas in TRAIN_FEASIBILITIES:
        part = cells[cells["feas"] == feas].merge(rows.reset_index(), on=["attr", "data"])
        absent += [(index + offsets[feas], feas) for index in part.loc[part["seeds"] == 0, "index"]]
        part = part[part["seeds"] > 0]
        y = part["index"].to_numpy() + offsets[feas]
        err = np.vstack([part["top1"] - part["low"], part["high"] - part["top1"]]).astype(float)
        ax.errorbar(part["top1"], y, xerr=np.nan_to_num(err), fmt="o", color=COLORS[feas], capsize=3, label=feas)
    baseline = study.cells[study.cells["data"] == BASELINE].iloc[0]
    if baseline["seeds"]:
        ax.axvline(
            baseline["top1"], color="0.3", linestyle="--", linewidth=1, label=f"real only ({baseline['top1']:.1f})"
        )
        if baseline["seeds"] > 1:
            ax.axvspan(baseline["low"], baseline["high"], color="0.85", zorder=0)
    _label_absent(ax, absent, baseline["top1"] if baseline["seeds"] else None)
    ax.set_yticks(range(len(rows)), _row_labels(rows))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("test top-1 (%), mean over seeds, 95% t interval")
    ax.set_title("Top-1 per cell", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, fontsize=8, frameon=False)
    ax.grid(axis="x", color="0.9")


def _label_absent(ax, absent: list[tuple[float, str]], baseline: float | None) -> None:
    """ "no run" at the side of the panel farther from the real-only line, so the two never overlap."""
    if not absent:
        return
    low, high = ax.get_xlim()  # final: every point and the line are drawn
    line = 0.5 if baseline is None else (baseline - low) / (high - low)  # where the line is, 0 to 1
    x, align = (0.02, "left") if line > 0.5 else (0.98, "right")
    for y, feas in absent:
        ax.text(
            x,
            y,
            f"{feas}: {NO_RUN_LABEL}",
            transform=ax.get_yaxis_transform(),
            ha=align,
            va="center",
            fontsize=7,
            color="0.5",
        )


def _comparisons_panel(ax, study: Study) -> None:
    comparisons = study.comparisons.reset_index(drop=True)
    labels = [
        f"{attr} · {MODE_NAMES[data]}: {a} − {b}"
        for attr, data, a, b in zip(comparisons["attr"], comparisons["data"], comparisons["a"], comparisons["b"])
    ]
    for i, row in comparisons.iterrows():
        if not row["seeds"]:
            ax.text(
                0,
                i,
                "no paired run",
                ha="center",
                va="center",
                fontsize=8,
                color="0.5",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
            )
            continue
        ax.fill_betweenx([i - 0.35, i + 0.35], -row["mde"], row["mde"], color="0.9", zorder=0)
        ax.errorbar(
            row["difference"],
            i,
            xerr=[[row["difference"] - row["low"]], [row["high"] - row["difference"]]],
            fmt="o",
            color=COMPARED_COLORS[row["b"]],
            capsize=3,
        )
        # in a column right of the axes: Holm-corrected p and the seeds paired
        ax.text(
            1.02,
            i,
            f"Holm p={row['p_holm']:.2f} · {int(row['seeds'])} seeds",
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=8,
            color="0.25",
        )
    ax.axvline(0, color="0.3", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("difference in top-1 (points), paired bootstrap 95% interval; grey: ± MDE")
    ax.set_title("Feasible minus infeasible / mixed (positive: feasible better); p Holm-adjusted", fontsize=10)
    ax.grid(axis="x", color="0.9")
    ax.margins(x=0.1)


def _empty_row(left, right, dataset: str) -> None:
    left.text(0.5, 0.5, f"{dataset}: no run under this procedure", ha="center", va="center", transform=left.transAxes)
    for ax in (left, right):
        ax.set_axis_off()


def _row_title(study: Study, dataset: str) -> str:
    context = study.context
    return (
        f"{dataset}: {context['test images']} test images, {context['runs']} runs; protocol {context['protocol']}; "
        f"checkpoint {context['checkpoint']}" + (f"\n{OPTIMISTIC}" if study.optimistic else "")
    )


def draw_figure(studies: Studies, procedure: Procedure):
    """The figure of one procedure: a row of two panels per dataset (a matplotlib Figure)."""
    datasets = studies.datasets
    comparisons = max(len(study.comparisons) for study in studies.by.values())
    height = max(4.0, 0.32 * comparisons + 2.4)
    fig = plt.figure(figsize=(16, height * len(datasets) + 0.8), layout="constrained")
    fig.suptitle(
        f"{studies.context['profile']} profile; procedure: {describe(procedure)}\n"
        "right: paired bootstrap intervals; p-values Holm-adjusted over each dataset's comparisons",
        fontsize=11,
    )
    for row, dataset in zip(np.atleast_1d(fig.subfigures(len(datasets), 1)), datasets):
        left, right = row.subplots(1, 2, width_ratios=[1, 1.25])
        study = studies.study(procedure, dataset)
        if study is None:
            _empty_row(left, right, dataset)
            continue
        _cells_panel(left, study)
        _comparisons_panel(right, study)
        row.suptitle(_row_title(study, dataset), fontsize=10, fontweight="bold")
    return fig


def save_figure(studies: Studies, procedure: Procedure, path: str | Path) -> None:
    """Draw one procedure's figure and save a PNG (no timestamp in its metadata: reruns give equal bytes)."""
    fig = draw_figure(studies, procedure)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
