"""A contact sheet per attribute: what the pipeline did to a few real images, at a glance.

One row per real image: the source, its mask, then the chosen edit of every feasible slot and
every infeasible slot, each labelled with its value and filter score. A slot the filter
rejected shows its best-scoring candidate with a red frame, so rejections are seen, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont, ImageOps

from varireal.images import ImageReadError, read_image_rgb
from varireal.io import read_table, save_image
from varireal.shards import read_member
from varireal.vocabulary import FEASIBILITIES

ACCEPTED, REJECTED, MISSING = (40, 150, 60), (200, 30, 30), (128, 128, 128)


@dataclass(frozen=True)
class Tile:
    image: Image.Image | None
    label: str
    frame: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Sources:
    """Where the gallery reads from: the real set, its masks, and one attribute's edits and filtered sets."""

    real_dir: Path
    masks_dir: Path
    edits_dir: Path  # data/edits/<attr>
    synthetic_dir: Path  # data/synthetic/<attr>


def pick_sources(synthetic: pd.DataFrame, rows: int) -> list[str]:
    """`rows` real images with edits in every feasibility, one class after another (sorted ids in each)."""
    per_feas = synthetic.groupby("feasibility")["source_id"].apply(set)
    common = set.intersection(*(per_feas.get(f, set()) for f in FEASIBILITIES))
    candidates = synthetic[synthetic["source_id"].isin(common)].drop_duplicates("source_id")
    by_class = [sorted(ids) for _, ids in sorted(candidates.groupby("class_name")["source_id"])]
    # round robin: the first image of each class, then the second of each, ...
    order = [ids[i] for i in range(max(map(len, by_class), default=0)) for ids in by_class if i < len(ids)]
    return order[:rows]


def slot_tiles(candidates: pd.DataFrame, sources: Sources, feas: str) -> list[Tile]:
    """One tile per slot: the accepted edit, or the best rejected candidate framed in red."""
    tiles = []
    for _, slot in candidates.sort_values(["slot", "candidate"]).groupby("slot", sort=True):
        accepted = slot[slot["accepted"].astype(bool)]
        if len(accepted):
            row, frame, verdict = accepted.iloc[0], ACCEPTED, "kept"
            image = _read_member(sources.synthetic_dir / feas / row["shard"], row["offset"], row["size"])
        else:
            scored = slot[slot["status"] == "edited"]
            if scored.empty:
                tiles.append(Tile(None, f"{slot.iloc[0]['value']}\nskipped", MISSING))
                continue
            row, frame, verdict = (
                scored.sort_values("score", ascending=False, kind="stable").iloc[0],
                REJECTED,
                "rejected",
            )
            image = _read_member(sources.edits_dir / feas / row["edit_shard"], row["edit_offset"], row["edit_size"])
        tiles.append(Tile(image, f"{row['value']}\n{verdict} {float(row['score']):.2f}", frame))
    return tiles


def _read(path: Path) -> Image.Image | None:
    try:
        return read_image_rgb(path)
    except ImageReadError:
        return None


def _read_member(shard: Path, offset: int, size: int) -> Image.Image:
    """An edit's image from its shard. A missing or damaged shard is an error naming it, never an empty tile:
    the manifests recorded the image, so its set is damaged (`dvc checkout` or `dvc pull` restores it)."""
    return read_image_rgb(f"{shard}@{offset}", data=read_member(shard, int(offset), int(size)))


def render(rows: list[list[Tile]], headers: list[str], tile: int) -> Image.Image:
    font = ImageFont.load_default(size=max(10, tile // 12))
    label_h, header_h = 3 * (tile // 12 + 4), tile // 6
    columns = max(len(r) for r in rows) if rows else 1
    sheet = Image.new("RGB", (columns * (tile + 8) + 8, header_h + len(rows) * (tile + label_h + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for c, text in enumerate(headers[:columns]):
        draw.text((8 + c * (tile + 8), 4), text, fill="black", font=font)
    for r, row in enumerate(rows):
        y = header_h + r * (tile + label_h + 8)
        for c, cell in enumerate(row):
            x = 8 + c * (tile + 8)
            if cell.image is not None:
                sheet.paste(ImageOps.pad(cell.image, (tile, tile), color=(255, 255, 255)), (x, y))
            else:
                draw.rectangle((x, y, x + tile - 1, y + tile - 1), fill=(230, 230, 230))
            if cell.frame is not None:
                draw.rectangle((x - 2, y - 2, x + tile + 1, y + tile + 1), outline=cell.frame, width=3)
            draw.multiline_text((x, y + tile + 3), cell.label, fill="black", font=font, spacing=1)
    return sheet


def build_gallery(sources: Sources, out_path: Path, rows: int = 4, tile: int = 160) -> int:
    """Write the contact sheet for one attribute; return how many real images it shows."""
    real = read_table(sources.real_dir / "manifest.csv").set_index("id")
    masks = read_table(sources.masks_dir / "manifest.csv").set_index("id")
    synthetic = pd.concat(
        [read_table(sources.synthetic_dir / feas / "manifest.parquet") for feas in FEASIBILITIES], ignore_index=True
    )
    picked = pick_sources(synthetic, rows)
    sheet_rows, slots = [], 0
    for source_id in picked:
        mask_path = masks.loc[source_id, "mask_path"] if source_id in masks.index else None
        row = [
            Tile(
                _read(sources.real_dir / real.loc[source_id, "path"]),
                f"{source_id}\n{real.loc[source_id, 'class_name']}",
            ),
            Tile(_read(sources.masks_dir / mask_path) if isinstance(mask_path, str) else None, "mask"),
        ]
        for feas in FEASIBILITIES:
            feas_tiles = slot_tiles(
                synthetic[(synthetic["source_id"] == source_id) & (synthetic["feasibility"] == feas)], sources, feas
            )
            slots = max(slots, len(feas_tiles))
            row += feas_tiles
        sheet_rows.append(row)
    headers = ["source", "mask"] + [f"{feas} {i + 1}" for feas in FEASIBILITIES for i in range(max(slots, 1))]
    save_image(out_path, render(sheet_rows, headers, tile))
    return len(picked)
