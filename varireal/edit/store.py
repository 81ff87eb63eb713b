"""One edit set on disk: data/edits/<attribute>/<feasibility>/{shards/edits-NNNNN.tar, manifest.parquet}.

The plan is cut into shards of `shard_images` real images (sorted by source id), each shard one
tar of `<edit_id>.png` + `<edit_id>.json` samples (varireal.shards) written atomically once all
its items are done: a killed run loses at most the shard it was working on. A record carries
its item's key, the sha256 of everything its pixels depend on (input files, value, seed,
settings, models); on resume a shard whose records all have their planned keys is not touched,
and a shard that must be rewritten keeps the bytes of every item whose key still matches.
The manifest has one row per candidate, with the shard and byte range of its image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from varireal.edit.plan import EditItem
from varireal.shards import Sample, read_records, read_samples, write_shard

MANIFEST_COLUMNS = [
    "edit_id", "shard", "offset", "size", "status", "reason", "source_id", "source_path", "class_name", "class_index",
    "attribute", "feasibility", "value", "description", "prompt", "negative_prompt", "seed", "slot",
    "candidate", "mask_id", "rgb", "rgb_source", "settings", "models",
]
SHARD_DIR = "shards"


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


def shard_plan(items: Sequence[EditItem], shard_images: int) -> list[list[EditItem]]:
    """Items cut into shards of `shard_images` source images each, sources and items in sorted order.

    The layout depends on the plan and `shard_images` only (never on batch size or process count).
    """
    sources = sorted({item.source.id for item in items})
    index = {source: position // shard_images for position, source in enumerate(sources)}
    shards: list[list[EditItem]] = [[] for _ in range((len(sources) + shard_images - 1) // shard_images)]
    for item in sorted(items, key=lambda item: (item.source.id, item.edit_id)):
        shards[index[item.source.id]].append(item)
    return shards


class ShardStore:
    """The shards of one set directory, read and written whole."""

    def __init__(self, set_dir: Path, prefix: str) -> None:
        self.set_dir = Path(set_dir)
        self.prefix = prefix

    def name(self, index: int) -> str:
        return f"{SHARD_DIR}/{self.prefix}-{index:05d}.tar"

    def path(self, index: int) -> Path:
        return self.set_dir / self.name(index)

    def indices(self) -> list[int]:
        """The indices of the shard files present now, sorted."""
        folder = self.set_dir / SHARD_DIR
        names = sorted(folder.glob(f"{self.prefix}-*.tar")) if folder.is_dir() else []
        return sorted(int(p.stem.rpartition("-")[2]) for p in names if p.stem.rpartition("-")[2].isdigit())

    def samples(self, index: int) -> dict[str, Sample]:
        """What shard `index` holds now, by key; {} when it is absent or damaged (it is then redone)."""
        if not self.path(index).is_file():
            return {}
        try:
            return {sample.key: sample for sample in read_samples(self.path(index))}
        except ValueError:
            return {}

    def records(self, index: int) -> list[dict[str, Any]] | None:
        """The records of shard `index` without reading its images; None when absent or damaged."""
        try:
            return read_records(self.path(index))
        except ValueError:
            return None

    def write(self, index: int, samples: Iterable[Sample]) -> None:
        write_shard(self.path(index), samples)

    def prune(self, count: int, keep: Iterable[str] = ()) -> list[Path]:
        """Remove shards beyond `count` (the plan shrank), temp files of killed runs, and anything in
        the set directory that is neither a shard nor named in `keep` (e.g. an older layout's files)."""
        wanted = {self.path(i) for i in range(count)}
        allowed = {SHARD_DIR, *keep}
        removed = [p for p in sorted(self.set_dir.iterdir()) if p.name not in allowed] if self.set_dir.is_dir() else []
        folder = self.set_dir / SHARD_DIR
        removed += [p for p in sorted(folder.iterdir()) if p not in wanted] if folder.is_dir() else []
        for path in removed:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return removed

    def located(self, count: int) -> pd.DataFrame:
        """Every sample of the first `count` shards: key, record, and where its image bytes lie."""
        rows = []
        for index in range(count):
            with tarfile.open(self.path(index), "r:") as tar:
                offsets = {m.name.partition(".")[0]: (m.offset_data, m.size) for m in tar if m.name.endswith(".png")}
                for member in tar:
                    if member.name.endswith(".json"):
                        key = member.name.partition(".")[0]
                        offset, size = offsets.get(key, (-1, 0))
                        record = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
                        rows.append({**record, "shard": self.name(index), "offset": offset, "size": size})
        return pd.DataFrame(rows)


def edit_manifest(store: ShardStore, count: int, planned: Sequence[str]) -> pd.DataFrame:
    """One row per planned candidate in edit-id order; fails naming the shard if one is missing."""
    table = store.located(count)
    if not planned:
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    missing = sorted(set(planned) - set(table["edit_id"] if len(table) else []))
    if missing:
        raise ValueError(f"{store.set_dir}: {len(missing)} planned edit(s) missing from the shards after the run "
                         f"(e.g. {missing[0]}); rerun the stage")
    table = table.set_index("edit_id", drop=False).loc[sorted(planned)].reset_index(drop=True)
    return table[MANIFEST_COLUMNS]
