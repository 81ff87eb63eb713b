"""Write a dataset into `data/real/<dataset>` in the one layout every later stage reads.

    <out_dir>/{train,val,test}/<class folder>/<id><suffix>   original image bytes
    <out_dir>/manifest.csv   id, path, class_name, class_index, split, source
    <out_dir>/classes.csv    class_index, class_name, folder
    <out_dir>/rejected.csv   source, reason   (images that could not be used)
    <out_dir>/sources.json   the urls/archives used and the sha256 of each

Every file is written atomically and an image already in place with the same bytes is
left alone, so a rerun after a kill finishes the job and two runs give identical bytes.
The manifest is written last: its presence means the folder is complete.

`protocol` (params.yaml `protocol.<profile>`) decides what val is: heldout_val holds a share
of train out (or keeps the val the dataset lists: Aircraft's official one, Pets' split file's);
paper and final put every image the paper trains on in train (see config.Protocol and each
dataset module).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from PIL import Image
from tqdm import tqdm

from varireal.images import ImageReadError, read_image_rgb
from varireal.io import write_bytes, write_json, write_table
from varireal.safe_paths import check_class_name, check_id, inside
from varireal.seeding import item_seed
from varireal.settings.fetch import FetchParams
from varireal.vocabulary import PAPER_IMAGES, Protocol

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
MANIFEST_COLUMNS = ["id", "path", "class_name", "class_index", "split", "source"]


@dataclass(frozen=True)
class Candidate:
    """One image a dataset lists, before it is checked."""

    id: str  # unique in the dataset, derived from the source file name
    class_index: int
    split: Split
    file: Path  # where its bytes are now (unpacked archive, demo render)
    source: str  # what the manifest records as its origin, e.g. 'images.tar.gz:images/x.jpg'


@dataclass(frozen=True)
class Collected:
    """What a dataset module hands to `write_dataset`: classes in index order and the images."""

    class_names: list[str]
    candidates: list[Candidate]
    provenance: list[dict[str, Any]]
    val_from_train: bool = False  # the official split has no val: take val_fraction of train
    paper_trains_on_val: bool = False  # the paper's training images include this val (protocols paper, final)


def safe_folder_names(class_names: list[str]) -> list[str]:
    """Folder names made of [A-Za-z0-9._-] only, unique even on case-insensitive file systems."""
    folders: list[str] = []
    taken: set[str] = set()
    for name in class_names:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")[:80] or "class"
        if folder.lower() in taken:  # e.g. 'F-16A/B' and 'F-16A B': keep both, tell them apart by name
            folder = f"{folder}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        taken.add(folder.lower())
        folders.append(
            check_id(folder, f"the folder for class {name!r}")
        )  # holds by construction; kept if the rule changes
    return folders


def val_count(n_train: int, fraction: float) -> int:
    """Images of one class moved to val: round(n * fraction) as in CoOp, leaving at least one each side."""
    if n_train < 2:
        return 0
    return min(max(round(n_train * fraction), 1), n_train - 1)


def hold_out_val(candidates: list[Candidate], fraction: float, dataset: str) -> list[Candidate]:
    """Move a per-class share of train to val, chosen by a hash of each id (not by listing order)."""
    by_class: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.split == "train":
            by_class.setdefault(candidate.class_index, []).append(candidate)
    to_val: set[str] = set()
    for members in by_class.values():
        ranked = sorted(members, key=lambda c: (item_seed(dataset, "val", c.id), c.id))
        to_val.update(c.id for c in ranked[: val_count(len(members), fraction)])
    return [replace(c, split="val") if c.id in to_val else c for c in candidates]


def assign_val(
    candidates: list[Candidate], collected: Collected, params: FetchParams, dataset: str, protocol: Protocol
) -> list[Candidate]:
    """The val split of the usable images: held out of train, kept, or (protocols paper, final) trained on."""
    if protocol in PAPER_IMAGES and collected.paper_trains_on_val:
        return [replace(c, split="train") if c.split == "val" else c for c in candidates]
    if collected.val_from_train:
        return hold_out_val(candidates, params.val_fraction, dataset)
    return candidates


def rejection_reason(file: Path, min_side: int) -> str | None:
    """Why an image cannot be used (missing, undecodable, too small), or None when it can."""
    if not file.is_file():
        return "missing: listed by the dataset but not found in the archive"
    try:
        width, height = read_image_rgb(file).size
    except (ImageReadError, Image.DecompressionBombError) as err:
        # The cause alone, without our temporary path, so rejected.csv is the same everywhere.
        detail = str(err.__cause__ or err).replace(str(file), file.name)
        return f"unreadable: {detail}"
    if min(width, height) < min_side:
        return f"too small: {width}x{height} px, min_side={min_side}"
    return None


def write_dataset(
    out_dir: Path, dataset: str, collected: Collected, params: FetchParams, protocol: Protocol = "heldout_val"
) -> pd.DataFrame:
    """Check every candidate, copy the usable ones into place, and write the tables."""
    class_names, candidates = collected.class_names, collected.candidates
    _require_safe_names(dataset, class_names, candidates)
    _require_unique_ids(dataset, candidates)
    with ThreadPoolExecutor(max_workers=params.workers) as pool:
        checks = pool.map(lambda c: rejection_reason(c.file, params.min_side), candidates)
        reasons = list(
            tqdm(checks, total=len(candidates), desc=f"{dataset}: checking images", unit="img", disable=None)
        )
    usable = [candidate for candidate, reason in zip(candidates, reasons) if reason is None]
    usable = assign_val(usable, collected, params, dataset, protocol)  # after the checks: val_fraction of usable images
    folders = safe_folder_names(class_names)
    rows = []
    for candidate in usable:
        path = f"{candidate.split}/{folders[candidate.class_index]}/{candidate.id}{candidate.file.suffix.lower()}"
        rows.append(
            {
                "id": candidate.id,
                "path": path,
                "class_name": class_names[candidate.class_index],
                "class_index": candidate.class_index,
                "split": candidate.split,
                "source": candidate.source,
            }
        )
        _copy_if_changed(candidate.file, inside(out_dir / path, out_dir))
    manifest = _sorted_manifest(rows)
    _remove_stale_files(out_dir, set(manifest["path"]))
    rejected = [{"source": c.source, "reason": reason} for c, reason in zip(candidates, reasons) if reason is not None]
    classes = pd.DataFrame({"class_index": range(len(class_names)), "class_name": class_names, "folder": folders})
    write_table(out_dir / "classes.csv", classes)
    write_table(out_dir / "rejected.csv", pd.DataFrame(rejected, columns=["source", "reason"]).sort_values("source"))
    write_json(out_dir / "sources.json", {"dataset": dataset, "inputs": collected.provenance})
    write_table(out_dir / "manifest.csv", manifest)
    return manifest


def _require_safe_names(dataset: str, class_names: list[str], candidates: list[Candidate]) -> None:
    # The dataset modules check what they read, naming the list file and line; this catches any that did not.
    for index, name in enumerate(class_names):
        check_class_name(name, f"{dataset}: class {index}")
    for candidate in candidates:
        check_id(candidate.id, f"{dataset}: {candidate.source}")


def _require_unique_ids(dataset: str, candidates: list[Candidate]) -> None:
    counts = Counter(c.id for c in candidates)
    repeated = sorted(image_id for image_id, count in counts.items() if count > 1)
    if repeated:
        raise ValueError(f"{dataset}: image ids listed more than once: {repeated[:5]}")


def _sorted_manifest(rows: list[dict[str, Any]]) -> pd.DataFrame:
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    order = manifest["split"].map({split: rank for rank, split in enumerate(SPLITS)})
    manifest = manifest.assign(_order=order).sort_values(["_order", "class_index", "id"], kind="stable")
    return manifest.drop(columns="_order").reset_index(drop=True).astype({"class_index": "int64"})


def _copy_if_changed(source: Path, dest: Path) -> None:
    data = source.read_bytes()
    if dest.is_file() and dest.stat().st_size == len(data) and dest.read_bytes() == data:
        return
    write_bytes(dest, data)


def _remove_stale_files(out_dir: Path, keep: set[str]) -> None:
    """Drop images of an earlier run with other settings, and temp files of a killed one."""
    for leftover in out_dir.glob(".tmp-*"):
        leftover.unlink()
    for split in SPLITS:
        for folder, _dirs, files in os.walk(out_dir / split, topdown=False):
            for name in files:
                path = Path(folder) / name
                if path.relative_to(out_dir).as_posix() not in keep:
                    path.unlink()
            if not os.listdir(folder):
                os.rmdir(folder)
