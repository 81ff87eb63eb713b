"""Oxford-IIIT Pet: 37 breeds, official trainval/test lists, train/val/test from the reference's split file.

Official layout (images.tar.gz + annotations.tar.gz, or the same unpacked in one folder):
    images/<Breed_name>_<n>.jpg
    annotations/trainval.txt, annotations/test.txt   lines '<image> <class id> <species> <breed id>'

The split is the one the paper's fine-tuning code reads, `split_coop.csv` (CoOp's split, from the
reference repository at its pinned commit, downloaded and sha256-checked like the archives):
    split,filename                              header; CRLF line endings
    train,Abyssinian/Abyssinian_122.jpg         split is train, val or test
Rows are matched to images by the file's base name without extension (= our image id), as the
reference matches them. Every trainval and test image has exactly one row, and the test rows
are exactly test.txt: 2,944 train / 736 val / 3,669 test. Every protocol uses these splits:
`paper` trains on the train rows and only logs val, `heldout_val` chooses its checkpoint on val.

Classes are ordered by the official class id (1..37, alphabetical ignoring case); the
class name is the breed as spelled in the file names with '_' read as a space
('american_bulldog' -> 'american bulldog').
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from varireal.datasets.download import ChecksumError, file_digests, split_checksum
from varireal.datasets.layout import SPLITS, Candidate, Collected, Split
from varireal.datasets.sources import SourceTree, prepare
from varireal.safe_paths import check_id
from varireal.settings.fetch import PETS_SPLIT_URL, FetchParams, SourceParams

LIST_FILES: dict[str, str] = {"trainval": "annotations/trainval.txt", "test": "annotations/test.txt"}
SPLIT_FILE = "split_coop.csv"
SPLIT_HEADER = ["split", "filename"]


@dataclass(frozen=True)
class SplitRow:
    split: Split
    filename: str  # as written, e.g. 'Abyssinian/Abyssinian_122.jpg'
    line: int  # in the split file, the header being line 1


def collect(params: FetchParams, download_dir: Path) -> Collected:
    source = params.sources["oxford_pets"]
    tree = prepare("oxford_pets", source, download_dir, params)
    list_paths = {name: tree.find_file(tail) for name, tail in LIST_FILES.items()}
    listed = {name: read_list(path) for name, path in list_paths.items()}
    split_path = find_split_file(tree)
    provenance = tree.provenance + _local_split_record(split_path, source, tree.provenance)
    split_of = splits_from_file(read_split_file(split_path), split_path, listed, list_paths)
    class_names = class_names_by_id([entry for entries in listed.values() for entry in entries])
    first_image = f"{listed['trainval'][0][0]}.jpg"
    images = tree.find_dir("images", containing=first_image)
    index_of = {class_id: index for index, class_id in enumerate(sorted(class_names))}
    candidates = [
        Candidate(
            image_id,
            index_of[class_id],
            split_of[image_id],
            images / f"{image_id}.jpg",
            tree.source_name(images / f"{image_id}.jpg"),
        )
        for entries in listed.values()
        for image_id, class_id in entries
    ]
    names = [class_names[class_id] for class_id in sorted(class_names)]
    return Collected(names, candidates, provenance)


def read_list(path: Path) -> list[tuple[str, int]]:
    """(image id, class id) per line of trainval.txt / test.txt; '#' lines are comments."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[1].isdigit():
            raise ValueError(f"{path}:{number}: expected '<image> <class id> <species> <breed id>', got {line!r}")
        entries.append((check_id(fields[0], f"{path}:{number}"), int(fields[1])))
    if not entries:
        raise ValueError(f"{path}: lists no images")
    return entries


def class_names_by_id(entries: list[tuple[str, int]]) -> dict[int, str]:
    """Official class id -> breed name, taken from the image ids ('great_pyrenees_12' -> 'great pyrenees')."""
    names: dict[int, str] = {}
    for image_id, class_id in entries:
        breed = image_id.rsplit("_", 1)[0].replace("_", " ")
        if names.setdefault(class_id, breed) != breed:
            raise ValueError(
                f"oxford_pets: class id {class_id} names both {names[class_id]!r} and {breed!r} ({image_id})"
            )
    return names


def find_split_file(tree: SourceTree) -> Path:
    try:
        return tree.find_file(SPLIT_FILE)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"oxford_pets: {err}. Pets' train/val/test come from the reference's {SPLIT_FILE}: list {PETS_SPLIT_URL} "
            "in fetch.sources.oxford_pets.urls (its sha256 in checksums), or put that file into the folder "
            "fetch.sources.oxford_pets.archive names"
        ) from None


def read_split_file(path: Path) -> dict[str, SplitRow]:
    """Image id -> its row of split_coop.csv, every row checked: header, split, file name, id, no repeats."""
    rows: dict[str, SplitRow] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:  # newline="": csv reads the CRLF endings
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != SPLIT_HEADER:
            raise ValueError(f"{path}:1: expected the header {','.join(SPLIT_HEADER)!r}, got {header!r}")
        for fields in reader:
            if not fields:
                continue  # a blank line
            row = _split_row(fields, path, reader.line_num)
            image_id = _image_id(row, path)
            if image_id in rows:
                raise ValueError(
                    f"{path}:{row.line}: image {image_id!r} ({row.filename!r}) has a second row; "
                    f"its first is line {rows[image_id].line}: each image must have exactly one"
                )
            rows[image_id] = row
    if not rows:
        raise ValueError(f"{path}: no rows after the header")
    return rows


def splits_from_file(
    rows: dict[str, SplitRow], path: Path, listed: dict[str, list[tuple[str, int]]], list_paths: dict[str, Path]
) -> dict[str, Split]:
    """Image id -> split, once the file is known to cover trainval and test exactly, its test rows being test.txt."""
    listed_in = {image_id: name for name, entries in listed.items() for image_id, _ in entries}
    for image_id, row in rows.items():
        listed_as = listed_in.get(image_id)
        if listed_as is None:
            raise ValueError(
                f"{path}:{row.line}: {row.filename!r} is neither in {list_paths['trainval']} nor in {list_paths['test']}"
            )
        if (row.split == "test") != (listed_as == "test"):
            raise ValueError(
                f"{path}:{row.line}: {row.filename!r} is in split {row.split!r}, but {list_paths[listed_as]} lists it: "
                f"the test rows must be exactly the official test list {list_paths['test']}"
            )
    for name, entries in listed.items():
        missing = [image_id for image_id, _ in entries if image_id not in rows]
        if missing:
            raise ValueError(
                f"{path}: no row for {len(missing)} image(s) of {list_paths[name]}, e.g. {missing[:3]}: "
                "every trainval and test image needs exactly one"
            )
    return {image_id: row.split for image_id, row in rows.items()}


def _split_row(fields: list[str], path: Path, line: int) -> SplitRow:
    if len(fields) != len(SPLIT_HEADER):
        raise ValueError(f"{path}:{line}: expected 'split,filename', got {','.join(fields)!r}")
    split, filename = fields
    if split not in SPLITS:
        raise ValueError(f"{path}:{line}: split {split!r}: expected one of {', '.join(SPLITS)}")
    return SplitRow(split, filename, line)  # type: ignore[arg-type]  # checked against SPLITS


def _image_id(row: SplitRow, path: Path) -> str:
    """The base name without extension, as the reference matches rows to images ('Abyssinian/Abyssinian_122.jpg')."""
    stem, dot, _extension = PurePosixPath(row.filename).name.rpartition(".")
    if not dot:
        raise ValueError(f"{path}:{row.line}: file name {row.filename!r}: expected '<breed folder>/<image id>.jpg'")
    return check_id(stem, f"{path}:{row.line}")


def _local_split_record(path: Path, source: SourceParams, provenance: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """sources.json's record of a split file the user supplied (a downloaded one is recorded and checked already),
    after checking it against the sha256 pinned for the split file's url, if any."""
    if any(entry.get("file") == SPLIT_FILE for entry in provenance):
        return []
    pinned = next(
        (
            checksum
            for url, checksum in zip(source.urls, source.checksums)
            if PurePosixPath(unquote(urlparse(url).path)).name == SPLIT_FILE
        ),
        None,
    )
    algorithm, expected = split_checksum(pinned) or ("sha256", None)
    digests = file_digests(path, {algorithm})
    if expected is not None and digests[algorithm] != expected:
        raise ChecksumError(
            f"{path}: {algorithm} {digests[algorithm]}, but fetch.sources.oxford_pets pins {expected} for {SPLIT_FILE}: "
            f"not the reference's split file (download it from {PETS_SPLIT_URL})"
        )
    return [{"archive": str(path), "bytes": path.stat().st_size, "sha256": digests["sha256"], "pinned": pinned}]
