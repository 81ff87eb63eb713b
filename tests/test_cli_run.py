"""`varireal run STAGE [ARGS]`: any stage of dvc.yaml by hand, with the stage's own arguments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from varireal.cli import app
from varireal.images import png_bytes
from varireal.io import write_table
from varireal.shards import Sample, write_shard

REPO = Path(__file__).resolve().parents[1]
KEPT = (222, 30, 200)  # the colour of every accepted edit in the gallery's input


@pytest.fixture()
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty workspace holding only params.yaml (the tiny profile, dataset demo)."""
    for name in ("params.yaml", "method.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def varireal_run(*args: str):
    return CliRunner().invoke(app, ["run", *args])


def _image(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (24, 16), color)


def write_gallery_inputs(root: Path, attr: str) -> None:
    """Two real images with masks, each with one accepted edit per feasibility, as the stages lay them out."""
    real, masks = root / "data/real/demo", root / "data/masks/demo"
    ids = {"cat_train_000": "cat", "rocket_train_000": "rocket"}
    for source_id in ids:
        (real / "train").mkdir(parents=True, exist_ok=True)
        (masks / "masks").mkdir(parents=True, exist_ok=True)
        _image((60, 60, 60)).save(real / f"train/{source_id}.png")
        Image.new("L", (24, 16), 255).save(masks / f"masks/{source_id}.png")
    pd.DataFrame(
        [{"id": i, "path": f"train/{i}.png", "class_name": c, "split": "train"} for i, c in ids.items()]
    ).to_csv(real / "manifest.csv", index=False)
    pd.DataFrame([{"id": i, "mask_path": f"masks/{i}.png", "status": "ok"} for i in ids]).to_csv(
        masks / "manifest.csv", index=False
    )
    for feas in ("feasible", "infeasible"):
        rows = [
            {
                "edit_id": f"{i}_s0c0",
                "status": "edited",
                "source_id": i,
                "class_name": c,
                "feasibility": feas,
                "slot": 0,
                "candidate": 0,
                "value": "neon pink",
                "score": 1.0,
                "accepted": True,
            }
            for i, c in ids.items()
        ]
        folder = root / "data/synthetic" / attr / feas
        located = write_shard(
            folder / "shards/synthetic-00000.tar", [Sample(r["edit_id"], png_bytes(_image(KEPT)), r) for r in rows]
        )
        for row, where in zip(rows, located):
            row.update(
                shard="shards/synthetic-00000.tar",
                offset=where.offset,
                size=where.size,
                edit_shard="shards/edits-00000.tar",
                edit_offset=-1,
                edit_size=-1,
            )
        write_table(folder / "manifest.parquet", pd.DataFrame(rows))


def test_help_says_which_stages_take_arguments():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})  # one line per argument
    assert result.exit_code == 0
    assert "ATTR FEAS for edit and filter, ATTR for gallery" in result.output
    assert "varireal run edit color infeasible" in result.output


def test_a_stage_without_arguments_runs_and_refuses_any(workspace):
    result = varireal_run("fetch")
    assert result.exit_code == 0, result.output
    assert "demo: 4 classes" in result.output
    assert set(pd.read_csv(workspace / "data/real/demo/manifest.csv")["split"]) == {"train", "val", "test"}
    refused = varireal_run("fetch", "color")
    assert refused.exit_code == 2 and "stage fetch takes no arguments; got color" in refused.output


def test_gallery_gets_its_attribute_not_varireals_command_line(workspace):
    write_gallery_inputs(workspace, "color")
    result = varireal_run("gallery", "color")
    assert result.exit_code == 0, result.output
    assert "gallery color: 2 real images" in result.output
    with Image.open(workspace / "reports/gallery/color.png") as sheet:
        assert (np.asarray(sheet.convert("RGB")) == KEPT).all(-1).any()  # the kept edits are on the sheet


def test_a_stage_with_missing_inputs_stops_naming_the_file(workspace):
    result = varireal_run("gallery", "texture")
    assert result.exit_code == 1
    assert "data/real/demo/manifest.csv" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ("edit", "shape", "infeasible"),
            1,
            "got shape infeasible; usage: python -m stages.edit <background|color|texture>",
        ),
        (("edit", "color"), 1, "got color; usage"),
        (("filter", "color", "sometimes"), 2, "invalid choice: 'sometimes'"),
        (("filter", "colour", "feasible"), 2, "invalid choice: 'colour'"),
        (("gallery",), 2, "the following arguments are required: attr"),
        (("gallery", "shape"), 2, "invalid choice: 'shape' (choose from 'background', 'color', 'texture')"),
        (("dream",), 2, "'dream' is not one of"),
    ],
)
def test_bad_stage_arguments_stop_before_any_work_with_what_is_allowed(workspace, args, code, expected):
    result = varireal_run(*args)
    assert result.exit_code == code, result.output
    assert expected in result.output
    assert sorted(p.name for p in workspace.iterdir()) == ["method.yaml", "params.yaml"]  # nothing read or written
