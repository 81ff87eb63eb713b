"""FGVC-Aircraft 2013b at the variant level: 100 classes, official train/val/test lists.

Official layout (fgvc-aircraft-2013b.tar.gz):
    fgvc-aircraft-2013b/data/images/<7-digit id>.jpg
    fgvc-aircraft-2013b/data/variants.txt                    one variant per line: the class order
    fgvc-aircraft-2013b/data/images_variant_{train,val,test}.txt   lines '<id> <variant>'

Variant names keep their spaces and slashes ('F-16A/B', 'Boeing 737-200'); the folder
name is made safe, the manifest keeps the real name. The images keep the photographer's
20 px banner at the bottom, as in torchvision and CoOp; crop it when reading if wanted.
Protocol `paper` trains on trainval (6,667), as the paper does: val is then part of train.
"""

from __future__ import annotations

from pathlib import Path

from varireal.datasets.layout import SPLITS, Candidate, Collected
from varireal.datasets.sources import prepare
from varireal.safe_paths import check_class_name, check_id
from varireal.settings.fetch import FetchParams


def collect(params: FetchParams, download_dir: Path) -> Collected:
    tree = prepare("fgvc_aircraft", params.sources["fgvc_aircraft"], download_dir, params)
    class_names = read_lines(tree.find_file("data/variants.txt"))
    index_of = {name: index for index, name in enumerate(class_names)}
    candidates: list[Candidate] = []
    for split in SPLITS:
        list_file = tree.find_file(f"data/images_variant_{split}.txt")
        entries = read_labels(list_file, index_of)
        images = tree.find_dir("data/images", containing=f"{entries[0][0]}.jpg")
        for image_id, class_index in entries:
            file = images / f"{image_id}.jpg"
            candidates.append(Candidate(image_id, class_index, split, file, tree.source_name(file)))
    # The paper fine-tunes on trainval (its code, from DataDream, loads split="trainval").
    return Collected(class_names, candidates, tree.provenance, paper_trains_on_val=True)


def read_lines(path: Path) -> list[str]:
    lines = enumerate(path.read_text().splitlines(), start=1)
    names = [check_class_name(line.strip(), f"{path}:{number}") for number, line in lines if line.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a variant is listed twice")
    return names


def read_labels(path: Path, index_of: dict[str, int]) -> list[tuple[str, int]]:
    """(image id, class index) per '<id> <variant name>' line; the name may contain spaces."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        image_id, _, variant = line.strip().partition(" ")
        if variant not in index_of:
            raise ValueError(f"{path}:{number}: variant {variant!r} is not in variants.txt")
        entries.append((check_id(image_id, f"{path}:{number}"), index_of[variant]))
    if not entries:
        raise ValueError(f"{path}: lists no images")
    return entries
