"""What trains the classifier and how its images reach the model.

Selection (`select_training_rows`) reads the real manifest (train split only) and the accepted
rows of the synthetic manifests, and picks, per class and deterministically:

- real: `real_shots` images (all when null);
- synthetic, one feasibility: `images_per_class` accepted edits (all when null);
- synthetic, `mixed`: k feasible AND k infeasible edits, k = min(accepted feasible, accepted
  infeasible, images_per_class // 2): exactly half of each, per class.

Each pick sorts the candidates by id and takes the first n of a permutation seeded by
(seed, kind, feasibility, class name), so a larger n keeps every image of a smaller one.
Whether a row is real or synthetic comes from the manifest it was read from (`kind`), never
from its path. The test split is never read here: evaluation alone opens it.

Batches (`step_sampler`, by `batches`):
- pool (`PoolSampler`, the reference's): every step takes the next `batch_size` rows of one
  shuffled pool of the synthetic rows and the real rows repeated `real_repeats` times, a new
  permutation per pass; a batch holds the kinds in whatever mix the permutation gives;
- per_kind (`PerKindSampler`): every step takes `batch_size` images of the larger kind (one
  epoch = one pass over it, reshuffled each epoch) and, with synthetic_real, `batch_size` images
  of the other kind, cycled through its own reshuffled passes.
A run lasts `steps` optimizer steps when set, else `epochs` passes (`training_steps`). One
DataLoader serves both kinds; each batch carries an `is_real` flag per image for the weighted
loss. The augmentation of an image is seeded by (seed, kind, id, draw), draw numbering its
passes (and copies), so batches depend neither on worker count, process state nor where the
files lie. Under DDP each of N ranks loads images r, r + N, ... of every step's batch
(`StepSampler.part`): the step is the same batch whatever N is.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from varireal.images import read_image_rgb
from varireal.io import read_table
from varireal.safe_paths import check_real_manifest
from varireal.seeding import item_rng, item_seed
from varireal.settings.train import DataMode
from varireal.shards import read_member
from varireal.vocabulary import FEASIBILITIES

# `file` + `offset`/`size`: an image inside a shard (offset -1: the whole file is the image).
SELECTION_COLUMNS = [
    "kind",
    "id",
    "file",
    "offset",
    "size",
    "class_index",
    "class_name",
    "feasibility",
    "attribute",
    "value",
    "source_id",
]
SYNTHETIC_REQUIRED = ("edit_id", "shard", "offset", "size", "class_name", "class_index", "feasibility", "accepted")
REAL_REQUIRED = ("id", "path", "class_name", "class_index", "split")


class SelectionError(ValueError):
    """The manifests cannot give the training set the settings ask for; the message names the file."""


# --- reading manifests ---------------------------------------------------------------------------


def _read_manifest(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise SelectionError(f"{path}: manifest not found (run the stage that writes it first)")
    table = read_table(path)
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise SelectionError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    return table


def read_class_names(real_dir: str | Path) -> list[str]:
    """Class names in class_index order from classes.csv (indices must be 0..C-1)."""
    path = Path(real_dir) / "classes.csv"
    classes = _read_manifest(path, ("class_index", "class_name")).sort_values("class_index")
    if classes["class_index"].tolist() != list(range(len(classes))):
        raise SelectionError(f"{path}: class_index must be 0..{len(classes) - 1} without gaps")
    return classes["class_name"].astype(str).tolist()


def real_rows(real_dir: str | Path, split: str) -> pd.DataFrame:
    """Real images of one split as selection rows (kind 'real'; file = real_dir / path)."""
    real_dir = Path(real_dir)
    manifest = check_real_manifest(_read_manifest(real_dir / "manifest.csv", REAL_REQUIRED), real_dir / "manifest.csv")
    rows = manifest[manifest["split"] == split]
    return pd.DataFrame(
        {
            "kind": "real",
            "id": rows["id"].astype(str),
            "file": [str(real_dir / p) for p in rows["path"]],
            "offset": -1,
            "size": 0,
            "class_index": rows["class_index"].astype(int),
            "class_name": rows["class_name"].astype(str),
            "feasibility": "",
            "attribute": "",
            "value": "",
            "source_id": rows["id"].astype(str),
        },
        columns=SELECTION_COLUMNS,
    ).reset_index(drop=True)


def _as_bool(column: pd.Series) -> pd.Series:
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


def accepted_rows(set_dir: str | Path, feasibility: str) -> pd.DataFrame:
    """The accepted edits of one synthetic set as selection rows (kind 'synthetic')."""
    set_dir = Path(set_dir)
    path = set_dir / "manifest.parquet"
    manifest = _read_manifest(path, SYNTHETIC_REQUIRED)
    rows = manifest[_as_bool(manifest["accepted"])]
    wrong = sorted(set(rows["feasibility"].astype(str)) - {feasibility})
    if wrong:
        raise SelectionError(f"{path}: rows with feasibility {wrong} in the {feasibility!r} set")
    return pd.DataFrame(
        {
            "kind": "synthetic",
            "id": rows["edit_id"].astype(str),
            "file": [str(set_dir / p) for p in rows["shard"]],
            "offset": rows["offset"].astype(int),
            "size": rows["size"].astype(int),
            "class_index": rows["class_index"].astype(int),
            "class_name": rows["class_name"].astype(str),
            "feasibility": feasibility,
            "attribute": rows["attribute"].astype(str) if "attribute" in rows else "",
            "value": rows["value"].astype(str) if "value" in rows else "",
            "source_id": rows["source_id"].astype(str) if "source_id" in rows else "",
        },
        columns=SELECTION_COLUMNS,
    ).reset_index(drop=True)


# --- selection -----------------------------------------------------------------------------------


def pick_per_class(rows: pd.DataFrame, per_class: int | None, *key: object) -> pd.DataFrame:
    """Per class: the first `per_class` rows (all if None) of a permutation of the id-sorted rows.

    The permutation is seeded by (*key, class_name): the same key gives the same pick, and a
    larger per_class extends a smaller one's pick.
    """
    picked = []
    for class_name, group in rows.groupby("class_name", sort=True):
        ordered = group.sort_values("id", kind="stable")
        order = item_rng(*key, class_name).permutation(len(ordered))
        picked.append(ordered.iloc[order[: len(ordered) if per_class is None else per_class]])
    return pd.concat(picked) if picked else rows.iloc[0:0]


def check_classes(rows: pd.DataFrame, class_names: list[str], source: str) -> None:
    """Every row's (class_index, class_name) is a class of classes.csv."""
    for index, name in set(zip(rows["class_index"], rows["class_name"])):
        if not 0 <= index < len(class_names) or class_names[index] != name:
            raise SelectionError(f"{source}: class {name!r} with class_index {index} is not in classes.csv")


def mixed_rows(feasible: pd.DataFrame, infeasible: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    """Per class k feasible + k infeasible edits: half of each, as many in all as ONE set would give.

    k = min(both counts, cap) // 2, cap defaulting to the smaller count: mixed is compared with
    feasible-only and infeasible-only runs, so it must not train on twice their images.
    """
    picked = []
    for class_name in sorted(set(feasible["class_name"]) | set(infeasible["class_name"])):
        sets = [rows[rows["class_name"] == class_name] for rows in (feasible, infeasible)]
        k = min(len(sets[0]), len(sets[1]), math.inf if cap is None else cap) // 2
        picked += [pick_per_class(rows, int(k), seed, "synthetic", feas) for rows, feas in zip(sets, FEASIBILITIES)]
    return pd.concat(picked) if picked else feasible.iloc[0:0]


def select_training_rows(
    real_dir: str | Path,
    synthetic_dirs: Mapping[str, str | Path],
    feas: str,
    *,
    data: DataMode,
    images_per_class: int | None,
    real_shots: int | None,
    seed: int,
) -> pd.DataFrame:
    """The training rows (SELECTION_COLUMNS), sorted by kind, class_index, feasibility, id.

    synthetic_dirs maps 'feasible'/'infeasible' to set directories; `feas` (feasible,
    infeasible or mixed) says which are read. Raises SelectionError naming the manifest when
    a kind the mode needs has no image.
    """
    class_names = read_class_names(real_dir)
    parts = []
    if data in ("synthetic_real", "real_only"):
        real = real_rows(real_dir, "train")
        check_classes(real, class_names, str(Path(real_dir) / "manifest.csv"))
        if real.empty:
            raise SelectionError(
                f"{Path(real_dir) / 'manifest.csv'}: no train image, but data={data} needs real images"
            )
        parts.append(pick_per_class(real, real_shots, seed, "real"))
    if data in ("synthetic_real", "synthetic_only"):
        parts.append(_synthetic(synthetic_dirs, feas, images_per_class, seed, class_names))
    selection = pd.concat(parts).sort_values(["kind", "class_index", "feasibility", "id"], kind="stable")
    return selection.reset_index(drop=True)[SELECTION_COLUMNS]


def _synthetic(
    synthetic_dirs: Mapping[str, str | Path], feas: str, cap: int | None, seed: int, class_names: list[str]
) -> pd.DataFrame:
    wanted = FEASIBILITIES if feas == "mixed" else (feas,)
    unknown = [f for f in wanted if f not in FEASIBILITIES]
    if unknown:
        raise SelectionError(f"feas={feas!r}: expected feasible, infeasible or mixed")
    sets = {}
    for feasibility in wanted:
        if feasibility not in synthetic_dirs:
            raise SelectionError(
                f"feas={feas} needs the {feasibility} synthetic set, but no directory was given for it"
            )
        rows = accepted_rows(synthetic_dirs[feasibility], feasibility)
        manifest = Path(synthetic_dirs[feasibility]) / "manifest.parquet"
        if rows.empty:
            raise SelectionError(f"{manifest}: no accepted image, but feas={feas} trains on this set")
        check_classes(rows, class_names, str(manifest))
        sets[feasibility] = rows
    if feas == "mixed":
        picked = mixed_rows(sets["feasible"], sets["infeasible"], cap, seed)
        if picked.empty:
            raise SelectionError(
                f"feas=mixed: no class has accepted images in both {', '.join(str(d) for d in synthetic_dirs.values())} "
                f"(or images_per_class={cap} < 2)"
            )
        return picked
    return pick_per_class(sets[feas], cap, seed, "synthetic", feas)


# --- datasets ------------------------------------------------------------------------------------


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """The image as it reads back from a JPEG file PIL writes at `quality` (default 4:2:0 subsampling).

    The reference trained on JPEG files: the synthetic edits saved with PIL's defaults and the real
    shots re-saved the same way (quality 75). Done in memory, no file written; the same pixels and
    quality give the same bytes, so a rerun sees the same image.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def training_jpeg_quality(quality: int | None, data: DataMode) -> int | None:
    """The round trip's quality for a run's training rows: none when only real images train, whose
    original files the reference's real-only baseline read (it re-saved real shots only for runs
    with synthetic images)."""
    return None if data == "real_only" else quality


class ImageRows(Dataset):
    """Selection rows as (image tensor, class_index, is_real).

    Indexed by `i` (eval) or `(i, draw)` (train): the random transform of that item is seeded by
    (seed, kind, id, draw), in whatever process or worker reads it.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        transform: Callable,
        *,
        seed: int = 0,
        cache: bool = False,
        jpeg_quality: int | None = None,
    ) -> None:
        self.files = rows["file"].astype(str).tolist()
        self.ranges = list(zip(rows["offset"].astype(int), rows["size"].astype(int)))
        # What seeds an image's augmentation: its identity, never where the files happen to lie.
        self.keys = (rows["kind"].astype(str) + ":" + rows["id"].astype(str)).tolist()
        self.labels = rows["class_index"].astype(int).tolist()
        self.is_real = (rows["kind"] == "real").tolist()
        self.transform = transform
        self.seed = seed
        self.jpeg_quality = jpeg_quality  # None: the decoded pixels as they are (evaluation always)
        self._cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> Image.Image:
        """A loose file, or the byte range of a shard member (one seek, never a scan of the shard),
        through the JPEG round trip when `jpeg_quality` is set."""
        offset, size = self.ranges[index]
        if offset < 0:
            image = read_image_rgb(self.files[index])
        else:
            image = read_image_rgb(f"{self.files[index]}@{offset}", data=read_member(self.files[index], offset, size))
        return image if self.jpeg_quality is None else jpeg_round_trip(image, self.jpeg_quality)

    def image(self, index: int) -> Image.Image:
        if self._cache is None:
            return self.read(index)
        if index not in self._cache:
            self._cache[index] = self.read(index)
        return self._cache[index]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, bool]:
        index, draw = key if isinstance(key, tuple) else (key, 0)
        image = self.image(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, "augment", self.keys[index], draw))
            pixels = self.transform(image)
        return pixels, self.labels[index], self.is_real[index]


def eval_loader(dataset: ImageRows, batch_size: int, num_workers: int, pin_memory: bool = False) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,  # val runs many times in one training
        # Each pass draws a base seed from the loader's generator; from torch's global one it would
        # shift the dropout and CutMix draws of training every time val is scored.
        generator=torch.Generator().manual_seed(0),
    )
