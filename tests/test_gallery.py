"""The gallery shows each slot's kept edit, or its best rejected candidate framed in red."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from varireal.gallery import ACCEPTED, REJECTED, Sources, build_gallery, pick_sources, slot_tiles
from varireal.images import png_bytes
from varireal.io import read_table, write_table
from varireal.shards import Sample, write_shard


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 16), (value, value, value)).save(path)


def _png_bytes(value: int) -> bytes:
    return png_bytes(Image.new("RGB", (24, 16), (value, value, value)))


def _row(source: str, feas: str, slot: int, cand: int, score: float, accepted: bool, status: str = "edited") -> dict:
    return {
        "edit_id": f"{source}_s{slot}c{cand}",
        "status": status,
        "source_id": source,
        "class_name": "cat",
        "feasibility": feas,
        "slot": slot,
        "candidate": cand,
        "value": f"v{slot}{cand}",
        "score": score,
        "accepted": accepted,
    }


KEPT = 222  # the grey of an accepted image in the synthetic shards (its edit-shard copy is 200)


def _tree(root: Path) -> Sources:
    """Real images, masks, edit shards and synthetic shards + manifest.parquet, as the stages write them."""
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
        rows = [_row(s, feas, 0, 0, 0.25, False) for s in ("a", "b")] + [
            _row(s, feas, 0, 1, 0.75, True) for s in ("a", "b")
        ]
        rows += [_row(s, feas, 1, 0, 0.25, False) for s in ("a", "b")] + [
            _row(s, feas, 1, 1, 0.0, False) for s in ("a", "b")
        ]
        edits = write_shard(
            sources.edits_dir / feas / "shards/edits-00000.tar",
            [Sample(r["edit_id"], _png_bytes(100 + 100 * r["candidate"]), r) for r in rows],
        )
        kept = write_shard(
            sources.synthetic_dir / feas / "shards/synthetic-00000.tar",
            [Sample(r["edit_id"], _png_bytes(KEPT), r) for r in rows if r["accepted"]],
        )
        where = {entry.key: entry for entry in kept}
        for row, edit in zip(rows, edits):
            row.update(edit_shard="shards/edits-00000.tar", edit_offset=edit.offset, edit_size=edit.size)
            entry = where.get(row["edit_id"])
            row.update(
                shard="shards/synthetic-00000.tar" if entry else None,
                offset=entry.offset if entry else -1,
                size=entry.size if entry else -1,
            )
        write_table(sources.synthetic_dir / feas / "manifest.parquet", pd.DataFrame(rows))
    return sources


def _manifest(sources: Sources, feas: str) -> pd.DataFrame:
    return read_table(sources.synthetic_dir / feas / "manifest.parquet")


def test_slot_tiles_keep_the_accepted_edit_and_show_the_best_rejected_one(tmp_path):
    sources = _tree(tmp_path)
    table = _manifest(sources, "feasible")
    tiles = slot_tiles(table[table["source_id"] == "a"], sources, "feasible")
    assert [t.frame for t in tiles] == [ACCEPTED, REJECTED]
    assert tiles[0].label == "v01\nkept 0.75"
    assert np.asarray(tiles[0].image)[0, 0, 0] == KEPT  # read from the synthetic shard at its offset
    assert tiles[1].label == "v10\nrejected 0.25"  # the higher-scoring candidate of the rejected slot
    assert np.asarray(tiles[1].image)[0, 0, 0] == 100  # read from the edit shard at its edit_offset


def test_a_missing_or_damaged_shard_stops_the_gallery_naming_it(tmp_path):
    sources = _tree(tmp_path)
    shard = sources.synthetic_dir / "feasible/shards/synthetic-00000.tar"
    table = _manifest(sources, "feasible")
    shard.write_bytes(shard.read_bytes()[:520])  # cut inside the accepted image
    with pytest.raises((OSError, ValueError), match=str(shard)):
        slot_tiles(table[table["source_id"] == "a"], sources, "feasible")
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=str(shard)):
        slot_tiles(table[table["source_id"] == "a"], sources, "feasible")


def test_gallery_has_a_row_per_real_image_and_a_column_per_slot(tmp_path):
    sources = _tree(tmp_path)
    out = tmp_path / "gallery/color.png"
    assert build_gallery(sources, out, rows=4, tile=40) == 2
    sheet = Image.open(out)
    columns = 2 + 2 * 2  # source, mask, two slots per feasibility
    assert sheet.width == columns * (40 + 8) + 8
    assert (np.asarray(sheet.convert("RGB")) == KEPT).all(-1).any()  # the kept edits, read from the synthetic shards
    assert pick_sources(pd.concat([_manifest(sources, f) for f in ("feasible", "infeasible")]), 1) == ["a"]


def test_rows_take_one_image_of_each_class_in_turn_and_skip_unpaired_images():
    rows = [
        {"source_id": source, "class_name": cls, "feasibility": feas}
        for source, cls in (("cat_1", "cat"), ("cat_0", "cat"), ("cup_0", "cup"), ("rocket_0", "rocket"))
        for feas in ("feasible", "infeasible")
    ] + [{"source_id": "cup_1", "class_name": "cup", "feasibility": "feasible"}]  # no infeasible edit
    synthetic = pd.DataFrame(rows)
    assert pick_sources(synthetic, 3) == ["cat_0", "cup_0", "rocket_0"]
    assert pick_sources(synthetic, 10) == ["cat_0", "cup_0", "rocket_0", "cat_1"]
