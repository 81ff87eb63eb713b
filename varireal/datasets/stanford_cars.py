"""Stanford Cars: 196 classes, from an archive or folder the user provides.

The original host (ai.stanford.edu/~jkrause/cars) is gone, so there is no URL: set
`fetch.sources.stanford_cars.archive` to one archive (.tar/.tgz/.zip), or a folder holding
archives and/or their unpacked contents, in either official layout (wrapper folders,
e.g. Kaggle's cars_train/cars_train/, are fine):

  devkit layout (cars_train.tgz + cars_test.tgz + car_devkit.tgz + test labels; torchvision's):
      cars_train/<00001.jpg ...>   cars_test/<00001.jpg ...>
      devkit/cars_meta.mat         (class_names)
      devkit/cars_train_annos.mat  (annotations: fname, class)
      cars_test_annos_withlabels.mat  (annotations: fname, class; any folder)
  all-in-one layout (car_ims.tgz + cars_annos.mat):
      car_ims/<000001.jpg ...>
      cars_annos.mat  (annotations: relative_im_path, class, test; class_names)

Classes keep the order of class_names (official ids 1..196). train comes from the train
annotations, val is round(val_fraction * n) of each class's n usable train images (picked
by a hash of the id), test from the labelled test set. Protocol `paper` holds no val out:
the paper trains on all 8,144 train images.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
from scipy.io import loadmat

from varireal.datasets.layout import Candidate, Collected, Split
from varireal.datasets.sources import SourceTree, prepare
from varireal.safe_paths import check_class_name, check_id
from varireal.settings.fetch import FetchParams

NO_SOURCE = (
    "stanford_cars: its download host is gone; set fetch.sources.stanford_cars.archive to your copy "
    "(an archive or folder in the devkit layout: cars_train/, cars_test/, devkit/cars_meta.mat, "
    "devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat; or car_ims/ + cars_annos.mat)"
)
TEST_LABELS = ("cars_test_annos_withlabels.mat", "cars_test_annos_withlabels (1).mat")


def collect(params: FetchParams, download_dir: Path) -> Collected:
    source = params.sources["stanford_cars"]
    if not source.archive and not source.urls:
        raise ValueError(NO_SOURCE)
    tree = prepare("stanford_cars", source, download_dir, params)
    try:
        class_names, candidates = _devkit_layout(tree)
    except FileNotFoundError as devkit_missing:
        try:
            class_names, candidates = _all_in_one_layout(tree)
        except FileNotFoundError as all_in_one_missing:
            raise FileNotFoundError(
                f"{NO_SOURCE}\n  devkit layout: {devkit_missing}\n  all-in-one layout: {all_in_one_missing}"
            ) from None
    # The paper trains on all 8,144 train images: protocols paper and final hold none out.
    return Collected(class_names, candidates, tree.provenance, val_from_train=True, paper_trains_on_val=True)


def _devkit_layout(tree: SourceTree) -> tuple[list[str], list[Candidate]]:
    class_names = read_class_names(tree.find_file("devkit/cars_meta.mat"))
    annotations: dict[Split, Path] = {
        "train": tree.find_file("devkit/cars_train_annos.mat"),
        "test": tree.find_file(*TEST_LABELS),
    }
    candidates = []
    for split, mat in annotations.items():
        records = load_annotations(mat)
        labels = class_indices(mat, records, len(class_names))
        fnames = field(mat, records, "fname")
        names = [check_id(str(name), f"{mat}, annotation {n} (fname)") for n, name in enumerate(fnames, start=1)]
        images = tree.find_dir(f"cars_{split}", containing=names[0])
        for name, class_index in zip(names, labels):
            file = images / name
            candidates.append(
                Candidate(f"cars_{split}_{Path(name).stem}", class_index, split, file, tree.source_name(file))
            )
    return class_names, candidates


def _all_in_one_layout(tree: SourceTree) -> tuple[list[str], list[Candidate]]:
    mat = tree.find_file("cars_annos.mat")
    class_names = read_class_names(mat)
    records = load_annotations(mat)
    labels = class_indices(mat, records, len(class_names))
    paths = field(mat, records, "relative_im_path")
    relatives = [relative_image_path(mat, n, str(path)) for n, path in enumerate(paths, start=1)]
    root = tree.find_dir(relatives[0].parent.as_posix(), containing=relatives[0].name).parent
    candidates = []
    for relative, class_index, test in zip(relatives, labels, field(mat, records, "test")):
        file = root / relative
        image_id = "_".join(relative.with_suffix("").parts)  # 'car_ims/000001.jpg' -> 'car_ims_000001'
        candidates.append(
            Candidate(image_id, class_index, "test" if int(test) else "train", file, tree.source_name(file))
        )
    return class_names, candidates


def relative_image_path(mat: Path, number: int, path: str) -> PurePosixPath:
    """'car_ims/000001.jpg' as read from annotation `number`: each part a safe id, so it stays under its folder."""
    parts = PurePosixPath(path).parts
    for part in parts or ("",):
        check_id(part, f"{mat}, annotation {number} (relative_im_path {path!r})")
    return PurePosixPath(*parts)


def read_class_names(mat: Path) -> list[str]:
    names = [str(name).strip() for name in np.atleast_1d(loadmat(mat, squeeze_me=True)["class_names"])]
    for index, name in enumerate(names):
        check_class_name(name, f"{mat}: class_names[{index}]")
    if len(set(names)) != len(names):
        raise ValueError(f"{mat}: class_names repeats a name")
    return names


def load_annotations(mat: Path) -> np.ndarray:
    """The 'annotations' struct array, one record per image (1-d even for a single image)."""
    records = np.atleast_1d(loadmat(mat, squeeze_me=True)["annotations"])
    if records.size == 0:
        raise ValueError(f"{mat}: no annotations")
    return records


def field(mat: Path, records: np.ndarray, name: str) -> list[object]:
    if name not in (records.dtype.names or ()):
        raise ValueError(f"{mat}: annotations have no field {name!r} (fields: {records.dtype.names})")
    return [record[name] for record in records]


def class_indices(mat: Path, records: np.ndarray, n_classes: int) -> list[int]:
    """0-based class per annotation (the .mat files count from 1); unlabelled test sets fail here."""
    labels = [int(class_id) for class_id in field(mat, records, "class")]
    outside = [label for label in labels if not 1 <= label <= n_classes]
    if outside:
        raise ValueError(f"{mat}: class {outside[0]} outside 1..{n_classes}; are these the labelled annotations?")
    return [label - 1 for label in labels]
