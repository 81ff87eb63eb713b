"""One edit set on disk: data/edits/<attribute>/<feasibility>/{images,records,manifest.csv}.

A record (JSON) is written after its image, both atomically, so a killed run leaves either a
finished item (image + record) or an item that is redone. A record carries the item's key: the
sha256 of everything its pixels depend on (input files, value, seed, settings, models); on
resume an item whose record has the same key is not edited again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from PIL import Image

from varireal.io import save_image, write_json

MANIFEST_COLUMNS = [
    "edit_id", "path", "status", "reason", "source_id", "source_path", "class_name", "class_index",
    "attribute", "feasibility", "value", "description", "prompt", "negative_prompt", "seed", "slot",
    "candidate", "mask_id", "settings", "models",
]


class FileHashes:
    """sha256 of input files, each read once per run (a real image serves many edits)."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path | None) -> str:
        if path is None:
            return "none"
        if path not in self._known:
            try:
                self._known[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError as err:
                self._known[path] = f"unreadable: {type(err).__name__}"
        return self._known[path]


def item_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class EditStore:
    def __init__(self, set_dir: Path) -> None:
        self.set_dir = Path(set_dir)
        self.image_dir = self.set_dir / "images"
        self.record_dir = self.set_dir / "records"

    def image_path(self, edit_id: str) -> Path:
        return self.image_dir / f"{edit_id}.png"

    def record_path(self, edit_id: str) -> Path:
        return self.record_dir / f"{edit_id}.json"

    def read_record(self, edit_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.record_path(edit_id).read_text())
        except (OSError, ValueError):
            return None  # absent, or unreadable: redo the item

    def finished(self, edit_id: str, key: str) -> bool:
        record = self.read_record(edit_id)
        if record is None or record.get("key") != key:
            return False
        return record.get("status") == "skipped" or self.image_path(edit_id).is_file()

    def save(self, record: dict[str, Any], image: Image.Image | None) -> None:
        if image is not None:
            save_image(self.image_path(record["edit_id"]), image)
        else:
            self.image_path(record["edit_id"]).unlink(missing_ok=True)  # an item now skipped keeps no old image
        write_json(self.record_path(record["edit_id"]), record)

    def prune(self, keep_ids: set[str]) -> list[Path]:
        """Remove images and records of items no longer planned, and temp files of killed runs."""
        removed = []
        for folder, suffix in ((self.image_dir, ".png"), (self.record_dir, ".json")):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                stale_temp = path.name.startswith(".tmp-")
                if stale_temp or (path.suffix == suffix and path.stem not in keep_ids):
                    path.unlink()
                    removed.append(path)
        return removed

    def manifest(self, edit_ids: Iterable[str]) -> pd.DataFrame:
        rows = []
        for edit_id in edit_ids:
            record = self.read_record(edit_id)
            if record is None:
                raise ValueError(f"{self.record_path(edit_id)}: missing or unreadable after the run; rerun the stage")
            rows.append({column: record.get(column) for column in MANIFEST_COLUMNS})
        return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
