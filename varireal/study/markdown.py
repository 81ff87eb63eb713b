"""table.md: the paper's table with datasets side by side, one per procedure, with the paired
comparisons and the claims' verdicts of each dataset, and what is still to run."""

from __future__ import annotations

import pandas as pd

from varireal.settings.study import StudySettings
from varireal.study.cells import BASELINE, MODE_NAMES, CellKey, all_cells, describe
from varireal.study.claims import CONTRADICTED, NO_RUN, OPEN, SUPPORTED, claim_verdicts, paper_claims
from varireal.study.procedure import Procedure, short
from varireal.study.procedure import describe as describe_procedure
from varireal.study.runs import OPTIMISTIC
from varireal.study.whole import Studies, survival


def _cell_text(row) -> str:
    if not row.seeds:
        return "no run"
    if row.seeds == 1:
        return f"{row.top1:.1f} (1 seed)"
    return f"{row.top1:.1f} ({row.low:.1f} to {row.high:.1f}), {row.seeds} seeds"


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "\u2212")


def _signed2(value: float) -> str:
    return f"{value:+.2f}".replace("-", "\u2212")


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _row_head(key: CellKey) -> str:
    attr, data, feas = key
    return f"| (none) | {MODE_NAMES[BASELINE]} | |" if data == BASELINE else f"| {attr} | {MODE_NAMES[data]} | {feas} |"


def cells_markdown(studies: Studies, procedure: Procedure) -> list[str]:
    """The paper's table: rows attribute x data x feasibility and the baseline, a column per dataset."""
    columns = [(name, studies.study(procedure, name)) for name in studies.datasets]
    lines = [
        "| attribute | data | feasibility | " + " | ".join(name for name, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    tables = {name: study.cells.set_index(["attr", "data", "feas"]) for name, study in columns if study is not None}
    for key in all_cells():
        values = [_cell_text(tables[name].loc[key]) if name in tables else "no run" for name, _ in columns]
        lines.append(_row_head(key) + " " + " | ".join(values) + " |")
    return lines


def context_markdown(studies: Studies, procedure: Procedure) -> list[str]:
    """What each dataset's runs share, a column per dataset."""
    columns = [(name, studies.study(procedure, name)) for name in studies.datasets]
    rows = ["test images", "checkpoint", "protocol", "test split", "model lock", "runs"]
    lines = ["| | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    for row in rows:
        values = [study.context.get(row, "") if study is not None else "no run" for _, study in columns]
        lines.append(f"| {row} | " + " | ".join(values) + " |")
    baselines = [", ".join(study.baselines) if study is not None else "" for _, study in columns]
    lines.append("| from | " + " | ".join(baselines) + " |")
    return lines


def comparisons_markdown(comparisons: pd.DataFrame) -> list[str]:
    lines = [
        "| attribute | data | comparison | seeds | difference (points) | 95% bootstrap interval | discordant pairs | McNemar p | Holm p | MDE (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in comparisons.itertuples():
        head = f"| {row.attr} | {MODE_NAMES[row.data]} | {row.a} \u2212 {row.b} |"
        if not row.seeds:
            lines.append(head + " 0 | no paired run | | | | | |")
            continue
        discordant = row.a_only + row.b_only
        # MDE at the observed share of discordant pairs; with none, one is assumed (stats.minimum_detectable_effect)
        mde = f"{row.mde:.1f}" if discordant else f"{row.mde:.1f} (no discordant pair; one assumed)"
        lines.append(
            f"{head} {row.seeds} | {_signed(row.difference)} | {_signed(row.low)} to {_signed(row.high)} | "
            f"{row.a_only} / {row.b_only} | {_p(row.p_value)} | {_p(row.p_holm)} | {mde} |"
        )
    return lines


def claims_markdown(claims: pd.DataFrame, settings: StudySettings) -> list[str]:
    """Each claim's verdict, then each row it was tested on."""
    interval = f"{100 * (1 - 2 * settings.level):g}% interval"
    verdicts = claim_verdicts(claims, settings.margin)
    lines = ["| claim | verdict | rows: supported / contradicted / not decided / no run |", "|---|---|---|"]
    for row in verdicts.to_dict("records"):
        counts = " / ".join(str(row[name]) for name in (SUPPORTED, CONTRADICTED, OPEN, NO_RUN))
        lines.append(f"| {row['says']} | **{row['verdict']}** | {counts} |")
    lines += [
        "",
        f"| claim | contrast | seeds | difference (points) | {interval} | p for (Holm) | p against (Holm) | verdict | what would decide it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in claims.itertuples():
        if not row.seeds:
            lines.append(f"| {row.claim} | {row.row} | 0 | | | | | {row.verdict} | {row.decide} |")
            continue
        lines.append(
            f"| {row.claim} | {row.row} | {row.seeds} | {_signed2(row.difference)} | "
            f"{_signed2(row.low)} to {_signed2(row.high)} | {_p(row.p_support_holm)} | {_p(row.p_contradict_holm)} | "
            f"{row.verdict} | {row.decide} |"
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


def _missing_markdown(studies: Studies) -> list[str]:
    lines = []
    for procedure in studies.procedures:
        for dataset in studies.datasets:
            study = studies.study(procedure, dataset)
            if study is None or not study.missing:
                continue
            where = f"{dataset}, {short(procedure, studies.compared)}" if studies.compared else dataset
            lines += [
                f"### {where}",
                "",
                *[f"- {describe(key)}" for key in study.missing],
                "",
                f"Queue them from the baseline commit ({', '.join(study.baselines)}: `git switch` to it first if it is "
                "not HEAD), then `dvc exp run --run-all` and `varireal study` again:",
                "",
                "```",
                *queue_commands(study.missing, study.cells),
                "```",
                "",
            ]
    return ["## No run yet", "", *lines] if lines else []


def _survival_markdown(studies: Studies) -> list[str]:
    if len(studies.procedures) < 2:
        return []
    table = survival(studies)
    heads = [short(procedure, studies.compared) for procedure in studies.procedures]
    says = {claim.key: claim.says.format(margin=f"{studies.settings.margin:g}") for claim in paper_claims()}
    lines = [
        "## Does each conclusion survive its corrections?",
        "",
        "Each claim's verdict under each procedure; the reference's procedure first.",
        "",
        "| claim | dataset | " + " | ".join(heads) + " | survives |",
        "|---|---|" + "---|" * (len(heads) + 1),
    ]
    for row in table.to_dict("records"):
        lines.append(
            f"| {says[row['claim']]} | {row['dataset']} | "
            + " | ".join(row[h] for h in heads)
            + f" | {row['survives']} |"
        )
    return [*lines, ""]


def _procedure_section(studies: Studies, procedure: Procedure) -> list[str]:
    optimistic = any(
        (study := studies.study(procedure, name)) is not None and study.optimistic for name in studies.datasets
    )
    warning = [f"**{OPTIMISTIC}**", ""] if optimistic else []  # above each table of such numbers
    changed = studies.not_default.get(procedure, [])
    defaults = (
        f"Not params.yaml's value (at HEAD) in these runs: {', '.join(changed)}."
        if changed
        else "Every other param at params.yaml's value (at HEAD)."
    )
    lines = [
        f"## Procedure: {describe_procedure(procedure)}",
        "",
        defaults,
        "",
        *context_markdown(studies, procedure),
        "",
        "Test top-1 (%) of LoRA-CLIP on each dataset's real test split: mean over seeds, 95% t interval, number of",
        "seeds. Datasets side by side, never pooled.",
        "",
        *warning,
        *cells_markdown(studies, procedure),
        "",
    ]
    for dataset in studies.datasets:
        study = studies.study(procedure, dataset)
        if study is None:
            continue
        lines += [
            f"### {dataset}: feasible against infeasible and mixed, paired image by image",
            "",
            *warning,
            *comparisons_markdown(study.comparisons),
            "",
            f"### {dataset}: the paper's claims",
            "",
            *warning,
            *claims_markdown(study.claims, studies.settings),
            "",
        ]
    return lines


EXPLAINED = [
    "Comparisons: seed s of one cell against seed s of the other on the same test images; difference: mean",
    "top-1 difference in points (positive: feasible is better); interval: paired bootstrap over test images;",
    "McNemar p: exact, two-sided, on the discordant (seed, image) pairs (A right only / B right only); Holm p:",
    "corrected over the comparisons with runs; MDE: the smallest difference the test set detects (alpha 0.05,",
    "power 0.8) at the share of discordant pairs observed.",
    "",
    "Claims: each tested against the margin on the per-image contrast (images the sample, seeds averaged",
    "first). A claim of no difference is supported when two one-sided tests put the difference inside the",
    "margin; a claim of a difference when it is shown above it. p for / against: the one-sided tests for and",
    "against the claim, Holm-corrected over the claim's rows; a claim holds when every row does.",
]


def markdown(studies: Studies) -> str:
    lines = [
        "# The study table",
        "",
        *[f"- {key}: {value}" for key, value in studies.context.items()],
        "",
        *EXPLAINED,
        "",
    ]
    for procedure in studies.procedures:
        lines += _procedure_section(studies, procedure)
    lines += _survival_markdown(studies)
    lines += _missing_markdown(studies)
    if studies.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in studies.notes], ""]
    return "\n".join(lines) + "\n"
