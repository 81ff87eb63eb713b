"""docs/fidelity.md stays honest: every row that names a setting is what `varireal settings` resolves
for the paper profile, per dataset, and a row marked `=` equals the reference's value."""

from __future__ import annotations

import re
from functools import cache

import pytest
import yaml
from pipeline_repo import REPO

from varireal.settings.whole import load_all_params
from varireal.stage_settings import stage_settings

DATASETS = ("oxford_pets", "fgvc_aircraft", "stanford_cars")
ROW = re.compile(r"^\|\s*`(?P<stage>[^`]+)`\s*\|\s*`(?P<setting>[^`]+)`\s*\|(?P<rest>.*)\|\s*$")


def _cells(rest: str) -> list[str]:
    return [cell.strip() for cell in rest.split("|")]


def _value(cell: str) -> object:
    """A cell's value: the YAML of its first `code` span."""
    match = re.search(r"`([^`]*)`", cell)
    assert match, f"no `value` in {cell!r}"
    return yaml.safe_load(match.group(1))


def fidelity_rows() -> list[dict]:
    rows = []
    for number, line in enumerate((REPO / "docs/fidelity.md").read_text().splitlines(), 1):
        match = ROW.match(line)
        if not match:
            continue
        datasets, reference, source, paper, status = _cells(match["rest"])[:5]
        rows.append(
            {
                "line": number,
                "stage": match["stage"],
                "setting": match["setting"],
                "reference": reference,
                "source": source,
                "paper": paper,
                "status": status,
                "datasets": DATASETS if datasets == "all" else tuple(d.strip("` ") for d in datasets.split(",")),
            }
        )
    return rows


@cache
def resolved(dataset: str) -> dict:
    return stage_settings(load_all_params(REPO / "params.yaml", ["profile=paper", f"dataset={dataset}"]))


def test_the_table_has_rows_for_every_stage_it_reproduces():
    stages = {row["stage"].split("@")[0] for row in fidelity_rows()}
    assert {"masks", "edit", "filter", "train", "evaluate"} <= stages


@pytest.mark.parametrize("row", fidelity_rows(), ids=lambda row: f"line{row['line']}-{row['stage']}-{row['setting']}")
def test_each_row_is_what_the_paper_profile_resolves_to(row):
    assert row["source"].strip("` ").split(":")[0], f"line {row['line']}: no file:line of the reference"
    for dataset in row["datasets"]:
        settings = resolved(dataset)
        assert row["stage"] in settings, f"line {row['line']}: no stage {row['stage']} in `varireal settings`"
        assert row["setting"] in settings[row["stage"]], f"line {row['line']}: {row['stage']} has no {row['setting']}"
        found = settings[row["stage"]][row["setting"]]
        assert found == _value(row["paper"]), f"line {row['line']} ({dataset}): the paper profile resolves to {found!r}"
        if row["status"].startswith("="):
            assert _value(row["reference"]) == found, f"line {row['line']}: marked = but the reference differs"


def test_the_params_files_cite_no_reference_line_fidelity_md_does():
    """A citation of the reference lives in one place, this document: the params files carry values."""
    citation = re.compile(r"\b[\w/]+\.(py|sh):\d")
    for name in ("params.yaml", "method.yaml"):
        cited = [line for line in (REPO / name).read_text().splitlines() if citation.search(line)]
        assert not cited, f"{name} cites the reference (move it to docs/fidelity.md): {cited[:3]}"
    sources = [row["source"] for row in fidelity_rows()]
    assert sum(bool(citation.search(source)) for source in sources) >= 100
