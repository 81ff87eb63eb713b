"""The mask set on disk: data/masks/<dataset>/{masks/<id>.png, records/<id>.json, manifest.csv}.

Every mask is stored with its record, which holds its key (varireal.keys: the image's sha256, the
detector text, the settings, the models and the mask code); a rerun keeps every mask whose key is
unchanged. Batches are fixed slices of the sorted jobs, so a resumed run groups images exactly as an
uninterrupted one; with several processes each takes whole batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from varireal.images import png_bytes
from varireal.io import write_bytes, write_json, write_table
from varireal.keys import file_sha256, item_key, mask_code
from varireal.launch import SINGLE, Ranks
from varireal.masks import RECORD_COLUMNS, MaskJob, MaskSettings, mask_batch
from varireal.safe_paths import check_id, inside


def mask_key(job: MaskJob, settings: MaskSettings, models_key: str) -> str:
    """What a finished mask depends on; a record with another key is redone on resume."""
    return item_key(
        {
            "image": file_sha256(job.image_path),
            "text": job.detector_text,
            "settings": asdict(settings),
            "models": models_key,
            "code": mask_code(),
        }
    )


class MaskStore:
    """Masks and per-item records in one directory; a record is written after its mask."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.record_dir = out_dir / "records"

    def mask_path(self, item_id: str) -> Path:
        return self._path("masks", item_id, ".png")

    def record_path(self, item_id: str) -> Path:
        return self._path("records", item_id, ".json")

    def _path(self, folder: str, item_id: str, suffix: str) -> Path:
        # Ids come from the real manifest: one like '../x' must not steer a write out of out_dir.
        check_id(item_id, f"{self.out_dir}: image id")
        return inside(self.out_dir / folder / f"{item_id}{suffix}", self.out_dir)

    def finished(self, item_id: str, key: str) -> bool:
        path = self.record_path(item_id)
        if not path.exists():
            return False
        record = json.loads(path.read_text())
        return record.get("key") == key and (record["status"] == "unreadable" or self.mask_path(item_id).exists())

    def save(self, record: dict[str, Any], mask: Any) -> None:
        if mask is not None:
            write_bytes(self.mask_path(record["id"]), png_bytes(mask))
        write_json(self.record_path(record["id"]), record)

    def prune(self, keep_ids: set[str]) -> None:
        """Drop masks and records of images no longer in the dataset (the out dir persists)."""
        for folder, suffix in ((self.out_dir / "masks", ".png"), (self.record_dir, ".json")):
            for path in sorted(folder.glob(f"*{suffix}")) if folder.exists() else []:
                if path.stem not in keep_ids:
                    path.unlink()

    def manifest(self, ids: Iterable[str]) -> pd.DataFrame:
        rows = [json.loads(self.record_path(i).read_text()) for i in ids]
        return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def build_masks(
    jobs: Sequence[MaskJob],
    out_dir: Path,
    detector: tuple[Any, Any],
    predictor: Any,
    settings: MaskSettings,
    models_key: str,
    ranks: Ranks = SINGLE,
) -> pd.DataFrame | None:
    """Mask every job, resuming finished ones, and write `manifest.csv` last.

    Batches are fixed slices of the sorted job list, so a resumed run groups images
    exactly as an uninterrupted one and produces the same bytes. With several ranks each
    masks batches r, r + N, ... and rank 0 writes the manifest once all are done (the others
    return None).
    """
    store = MaskStore(out_dir)
    jobs = sorted(jobs, key=lambda job: job.id)
    keys = {job.id: mask_key(job, settings, models_key) for job in jobs}
    batches = [jobs[i : i + settings.batch_size] for i in range(0, len(jobs), settings.batch_size)]
    mine = [batches[i] for i in ranks.mine(len(batches))]
    todo = [batch for batch in mine if not all(store.finished(job.id, keys[job.id]) for job in batch)]
    total = sum(map(len, mine))
    with tqdm(total=total, initial=total - sum(map(len, todo)), desc=ranks.label("masks"), unit="img") as progress:
        for batch in todo:
            for record, mask in mask_batch(batch, detector, predictor, settings):
                store.save({**record, "key": keys[record["id"]]}, mask)
            progress.update(len(batch))
    if not ranks.join():
        return None
    store.prune({job.id for job in jobs})
    manifest = store.manifest(job.id for job in jobs)
    write_table(out_dir / "manifest.csv", manifest)
    return manifest
