"""figure.png of the study: top-1 per cell (left) and the paired differences (right), with intervals.

Left: each cell of the table as a point at its mean top-1 over seeds, with its 95% t interval,
coloured by feasibility; the real-only baseline as a dashed line. Right: each comparison as a
point at its mean difference (feasible - other) with its paired bootstrap interval, the grey
band +-MDE (what this test set cannot tell from zero) and the Holm-corrected p in a column
right of the panel.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from varireal.io import atomic_path  # noqa: E402
from varireal.study.collect import OPTIMISTIC  # noqa: E402
from varireal.study.table import BASELINE, DATA_MODES, MODE_NAMES, Study  # noqa: E402
from varireal.vocabulary import TRAIN_FEASIBILITIES  # noqa: E402

COLORS = {"feasible": "#1b7837", "infeasible": "#c51b7d", "mixed": "#2166ac"}
COMPARED_COLORS = {"infeasible": COLORS["infeasible"], "mixed": COLORS["mixed"]}


def _row_labels(frame) -> list[str]:
    return [f"{attr} · {MODE_NAMES[data]}" for attr, data in zip(frame["attr"], frame["data"])]


def _cells_panel(ax, study: Study) -> None:
    cells = study.cells[study.cells["data"].isin(DATA_MODES)]
    rows = cells[["attr", "data"]].drop_duplicates().reset_index(drop=True)
    offsets = dict(zip(TRAIN_FEASIBILITIES, (-0.22, 0.0, 0.22)))
    for feas in TRAIN_FEASIBILITIES:
        part = cells[cells["feas"] == feas].merge(rows.reset_index(), on=["attr", "data"])
        for index in part.loc[part["seeds"] == 0, "index"]:
            ax.text(
                0.5,
                index + offsets[feas],
                f"{feas}: no run",
                transform=ax.get_yaxis_transform(),
                ha="center",
                va="center",
                fontsize=7,
                color="0.6",
            )
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
    ax.set_yticks(range(len(rows)), _row_labels(rows))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("test top-1 (%), mean over seeds, 95% t interval")
    ax.set_title("Top-1 per cell")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, fontsize=8, frameon=False)
    ax.grid(axis="x", color="0.9")


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
            f"p={row['p_holm']:.2f} · {int(row['seeds'])} seeds",
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=8,
            color="0.25",
        )
    ax.axvline(0, color="0.3", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("difference in top-1 (points), paired bootstrap 95% interval; grey: ± MDE")
    ax.set_title("Feasible minus infeasible / mixed (positive: feasible better)")
    ax.grid(axis="x", color="0.9")
    ax.margins(x=0.1)


def save_figure(study: Study, path: str | Path) -> None:
    """Draw both panels and save a PNG (no timestamp in its metadata, so reruns give equal bytes)."""
    comparisons = len(study.comparisons)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(15, max(4.0, 0.32 * comparisons + 1.6)), gridspec_kw={"width_ratios": [1, 1.25]}
    )
    _cells_panel(left, study)
    _comparisons_panel(right, study)
    context = study.context
    title = f"{context['profile']} profile, {context['dataset']}: {context['test images']} test images, {context['runs']} runs"
    fig.suptitle(title + (f"\n{OPTIMISTIC}" if study.optimistic else ""))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
