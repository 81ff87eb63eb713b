"""The gallery shows each slot's kept edit, or its best rejected candidate framed in red."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from varireal.gallery import ACCEPTED, REJECTED, Sources, build_gallery, pick_sources, slot_tiles


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 16), (value, value, value)).save(path)


def _row(source: str, feas: str, slot: int, cand: int, score: float, accepted: bool, status: str = "edited") -> dict:
    return {
        "edit_id": f"{source}_s{slot}c{cand}", "path": f"images/{source}_s{slot}c{cand}.png", "status": status,
        "source_id": source, "class_name": "cat", "feasibility": feas, "slot": slot, "candidate": cand, "value": f"v{slot}{cand}",
        "score": score, "accepted": accepted,
    }


def _tree(root: Path) -> Sources:
    sources = Sources(root / "real", root / "masks", root / "edits/color", root / "synthetic/color")
    for folder in (sources.real_dir, sources.masks_dir):
        folder.mkdir(parents=True)
    pd.DataFrame([{"id": s, "path": f"train/{s}.png", "class_name": "cat"} for s in ("a", "b")]).to_csv(
        sources.real_dir / "manifest.csv", index=False
    )
    pd.DataFrame([{"id": s, "mask_path": f"masks/{s}.png"} for s in ("a", "b")]).to_csv(
        sources.masks_dir / "manifest.csv", index=False
    )
    for s in ("a", "b"):
        _png(sources.real_dir / f"train/{s}.png", 50)
        _png(sources.masks_dir / f"masks/{s}.png", 255)
    for feas in ("feasible", "infeasible"):
        # slot 0: candidate 1 kept; slot 1: nothing reached the threshold
        rows = [_row(s, feas, 0, 0, 0.25, False) for s in ("a", "b")] + [_row(s, feas, 0, 1, 0.75, True) for s in ("a", "b")]
        rows += [_row(s, feas, 1, 0, 0.25, False) for s in ("a", "b")] + [_row(s, feas, 1, 1, 0.0, False) for s in ("a", "b")]
        table = pd.DataFrame(rows)
        (sources.synthetic_dir / feas).mkdir(parents=True)
        table.to_csv(sources.synthetic_dir / feas / "manifest.csv", index=False)
        for row in rows:
            _png(sources.edits_dir / feas / row["path"], 100 + 100 * row["candidate"])
            if row["accepted"]:
                _png(sources.synthetic_dir / feas / row["path"], 200)
    return sources


def test_slot_tiles_keep_the_accepted_edit_and_show_the_best_rejected_one(tmp_path):
    sources = _tree(tmp_path)
    table = pd.read_csv(sources.synthetic_dir / "feasible/manifest.csv")
    tiles = slot_tiles(table[table["source_id"] == "a"], sources, "feasible")
    assert [t.frame for t in tiles] == [ACCEPTED, REJECTED]
    assert tiles[0].label == "v01\nkept 0.75"
    assert tiles[1].label == "v10\nrejected 0.25"  # the higher-scoring candidate of the rejected slot
    assert np.asarray(tiles[1].image)[0, 0, 0] == 100


def test_gallery_has_a_row_per_real_image_and_a_column_per_slot(tmp_path):
    sources = _tree(tmp_path)
    out = tmp_path / "gallery/color.png"
    assert build_gallery(sources, out, rows=4, tile=40) == 2
    sheet = Image.open(out)
    columns = 2 + 2 * 2  # source, mask, two slots per feasibility
    assert sheet.width == columns * (40 + 8) + 8
    assert pick_sources(pd.concat([pd.read_csv(sources.synthetic_dir / f / "manifest.csv") for f in ("feasible", "infeasible")]), 1) == ["a"]


def test_rows_take_one_image_of_each_class_in_turn_and_skip_unpaired_images():
    rows = [
        {"source_id": source, "class_name": cls, "feasibility": feas}
        for source, cls in (("cat_1", "cat"), ("cat_0", "cat"), ("cup_0", "cup"), ("rocket_0", "rocket"))
        for feas in ("feasible", "infeasible")
    ] + [{"source_id": "cup_1", "class_name": "cup", "feasibility": "feasible"}]  # no infeasible edit
    synthetic = pd.DataFrame(rows)
    assert pick_sources(synthetic, 3) == ["cat_0", "cup_0", "rocket_0"]
    assert pick_sources(synthetic, 10) == ["cat_0", "cup_0", "rocket_0", "cat_1"]
