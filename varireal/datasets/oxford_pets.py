"""Oxford-IIIT Pet: 37 breeds, official trainval/test lists, val held out of trainval.

Official layout (images.tar.gz + annotations.tar.gz, or the same unpacked in one folder):
    images/<Breed_name>_<n>.jpg
    annotations/trainval.txt, annotations/test.txt   lines '<image> <class id> <species> <breed id>'

Classes are ordered by the official class id (1..37, alphabetical ignoring case); the
class name is the breed as spelled in the file names with '_' read as a space
('american_bulldog' -> 'american bulldog'). val is round(val_fraction * n) of the n usable
trainval images of each class, picked by a hash of the image id: with 0.2 that is the
CoOp protocol (2944 train / 736 val / 3669 test). The paper trains on that CoOp train split,
so protocol `paper` keeps the same layout (and trains without reading val for selection).
"""

from __future__ import annotations

from pathlib import Path

from varireal.datasets.config import FetchParams
from varireal.datasets.layout import Candidate, Collected, Split
from varireal.datasets.sources import prepare
from varireal.safe_paths import check_id

LIST_FILES: dict[Split, str] = {"train": "annotations/trainval.txt", "test": "annotations/test.txt"}


def collect(params: FetchParams, download_dir: Path) -> Collected:
    tree = prepare("oxford_pets", params.sources["oxford_pets"], download_dir, params)
    listed = {split: read_list(tree.find_file(tail)) for split, tail in LIST_FILES.items()}
    class_names = class_names_by_id([entry for entries in listed.values() for entry in entries])
    first_image = f"{listed['train'][0][0]}.jpg"
    images = tree.find_dir("images", containing=first_image)
    index_of = {class_id: index for index, class_id in enumerate(sorted(class_names))}
    candidates = [
        Candidate(image_id, index_of[class_id], split, images / f"{image_id}.jpg", tree.source_name(images / f"{image_id}.jpg"))
        for split, entries in listed.items()
        for image_id, class_id in entries
    ]
    names = [class_names[class_id] for class_id in sorted(class_names)]
    return Collected(names, candidates, tree.provenance, val_from_train=True)


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
            raise ValueError(f"oxford_pets: class id {class_id} names both {names[class_id]!r} and {breed!r} ({image_id})")
    return names
