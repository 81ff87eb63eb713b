"""Tiny stand-ins for the official dataset archives, and a local HTTP server to fetch them from.

Each builder writes a handful of generated images in the official layout, including the
awkward cases the real datasets have or could have: class names with '/' and spaces, a
truncated JPEG, CMYK, RGBA and grayscale files, a 4x4 image, a listed file that is missing.
"""

from __future__ import annotations

import http.server
import io
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

MIN_SIDE = 16  # the tests' FetchParams.min_side: the 4x4 image is rejected, the rest pass


# --- images -------------------------------------------------------------------------------


def image_bytes(seed: int, kind: str = "rgb", size: tuple[int, int] = (48, 40)) -> bytes:
    """A small deterministic picture in one of the modes real datasets contain."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    out = io.BytesIO()
    if kind == "rgb":
        image.save(out, format="JPEG", quality=90)
    elif kind == "gray":
        image.convert("L").save(out, format="JPEG", quality=90)
    elif kind == "cmyk":
        image.convert("CMYK").save(out, format="JPEG", quality=90)
    elif kind == "rgba":
        image.convert("RGBA").save(out, format="PNG")  # PNG bytes under a .jpg name, as in Oxford Pets
    elif kind == "palette":
        image.convert("P").save(out, format="PNG")
    elif kind == "tiny":
        image.resize((4, 4)).save(out, format="JPEG", quality=90)
    elif kind == "truncated":
        image.save(out, format="JPEG", quality=90)
        return out.getvalue()[: len(out.getvalue()) // 2]
    else:
        raise ValueError(kind)
    return out.getvalue()


# The special images each dataset builder places; everything else is plain RGB.
SPECIAL_KINDS = ("truncated", "cmyk", "rgba", "gray", "tiny", "palette")
REJECTED_KINDS = {"truncated": "unreadable", "tiny": "too small", "missing": "missing"}


def kind_of(position: int) -> str:
    return SPECIAL_KINDS[position] if position < len(SPECIAL_KINDS) else "rgb"


# --- archives -----------------------------------------------------------------------------


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A gzip tar with fixed member metadata (name order, mtime 0) so its bytes are stable."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in sorted(members.items()):
            bundle.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


@dataclass
class Expected:
    """What fetch_dataset should report for a fixture archive."""

    class_names: list[str]
    counts: dict[str, int]  # usable images per split
    rejected: dict[str, str] = field(default_factory=dict)  # source suffix -> reason prefix


# Oxford Pets: 3 breeds, 6 trainval + 2 test each; the split file puts one trainval image of each in val.
PETS_BREEDS = ["Abyssinian", "american_bulldog", "great_pyrenees"]
PETS_VAL = ["Abyssinian_4", "american_bulldog_2", "great_pyrenees_6"]  # not what a hash or the listing order picks


def pets_split_rows() -> list[tuple[str, str]]:
    """(split, filename) rows as the reference's split_coop.csv has them: train, val and test blocks, each
    grouped by breed in no sorted order, `<breed folder>/<image id>.jpg`."""
    rows = []
    for split in ("train", "val", "test"):
        for breed in PETS_BREEDS:
            for n in (2, 1, 4, 3, 6, 5, 8, 7):
                image_id = f"{breed}_{n}"
                in_split = "test" if n > 6 else ("val" if image_id in PETS_VAL else "train")
                if in_split == split:
                    rows.append((split, f"{breed}/{image_id}.jpg"))
    return rows


def split_csv_bytes(rows: list[tuple[str, str]]) -> bytes:
    """A split file in the reference's format: header split,filename, CRLF after every line."""
    return "".join(f"{split},{filename}\r\n" for split, filename in [("split", "filename"), *rows]).encode()


def pets_archives(folder: Path) -> tuple[dict[str, Path], Expected]:
    """The two official archives and the reference's split file (as fetch downloads them: name -> path)."""
    images, trainval, test = {}, [], []
    position = 0
    for class_id, breed in enumerate(PETS_BREEDS, start=1):
        for n in range(1, 9):
            image_id = f"{breed}_{n}"
            species = 1 if breed[0].isupper() else 2
            (trainval if n <= 6 else test).append(f"{image_id} {class_id} {species} {n}")
            kind = kind_of(position)
            position += 1
            if image_id != "great_pyrenees_8":  # listed in test.txt, absent from images.tar.gz
                images[f"images/{image_id}.jpg"] = image_bytes(position, kind)
    images["images/Abyssinian_1.mat"] = b"not an image: the real archive has these too"
    annotations = {
        "annotations/trainval.txt": ("\n".join(trainval) + "\n").encode(),
        "annotations/test.txt": ("\n".join(test) + "\n").encode(),
        "annotations/list.txt": b"#Image CLASS-ID SPECIES BREED ID\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    archives = {
        "images.tar.gz": write_tar(folder / "images.tar.gz", images),
        "annotations.tar.gz": write_tar(folder / "annotations.tar.gz", annotations),
        "split_coop.csv": folder / "split_coop.csv",
    }
    archives["split_coop.csv"].write_bytes(split_csv_bytes(pets_split_rows()))
    # Special kinds land on Abyssinian_1..6 (all trainval): truncated _1, tiny _5 are rejected;
    # val is the split file's: one image per class, none of them rejected.
    expected = Expected(
        class_names=["Abyssinian", "american bulldog", "great pyrenees"],
        counts={"train": 5 + 5 + 5 - 2, "val": 3, "test": 2 + 2 + 1},
        rejected={
            "images/Abyssinian_1.jpg": "unreadable",
            "images/Abyssinian_5.jpg": "too small",
            "images/great_pyrenees_8.jpg": "missing",
        },
    )
    return archives, expected


# FGVC-Aircraft: 3 variants (one with '/', one with a space), 2 images per split each.
AIRCRAFT_VARIANTS = ["A300B4", "Boeing 737-200", "F-16A/B"]


def aircraft_archive(folder: Path) -> tuple[Path, Expected]:
    root = "fgvc-aircraft-2013b/data"
    members = {f"{root}/variants.txt": ("\n".join(AIRCRAFT_VARIANTS) + "\n").encode()}
    position = 0
    for split in ("train", "val", "test"):
        lines = []
        for variant in AIRCRAFT_VARIANTS:
            for _ in range(2):
                image_id = f"{1000000 + position:07d}"
                lines.append(f"{image_id} {variant}")
                members[f"{root}/images/{image_id}.jpg"] = image_bytes(100 + position, kind_of(position))
                position += 1
        members[f"{root}/images_variant_{split}.txt"] = ("\n".join(lines) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    expected = Expected(
        class_names=AIRCRAFT_VARIANTS,
        counts={"train": 6 - 2, "val": 6, "test": 6},  # the truncated and the tiny image are both in train
        rejected={"images/1000000.jpg": "unreadable", "images/1000004.jpg": "too small"},
    )
    return write_tar(folder / "fgvc-aircraft-2013b.tar.gz", members), expected


# Stanford Cars: 3 classes with spaces and a '/', 5 train + 2 test images each.
CARS_CLASSES = ["AM General Hummer SUV 2000", "Ford F-150 Regular Cab 2012", "Ram C/V Cargo Van Minivan 2012"]


def cars_annotations(
    names: list[str], classes: list[int], name_field: str, test: list[int] | None = None
) -> np.ndarray:
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), (name_field, "O")]
    fields += [("test", "O")] if test is not None else []
    records = np.zeros((1, len(names)), dtype=fields)
    for i, (name, class_id) in enumerate(zip(names, classes)):
        records[0, i] = (1, 1, 40, 30, class_id, name) + ((test[i],) if test is not None else ())
    return records


def mat_bytes(contents: dict[str, object]) -> bytes:
    out = io.BytesIO()
    scipy.io.savemat(out, contents)
    return out.getvalue()


def class_names_array(names: list[str]) -> np.ndarray:
    return np.array(names, dtype=object).reshape(1, -1)


def cars_devkit_folder(folder: Path) -> tuple[Path, Expected]:
    """The devkit release as users keep it: three archives and the loose test-label .mat."""
    train_names, train_classes, test_names, test_classes = [], [], [], []
    train, test = {}, {}
    for class_id in range(1, len(CARS_CLASSES) + 1):
        for _ in range(5):
            name = f"{len(train_names) + 1:05d}.jpg"
            train[f"cars_train/{name}"] = image_bytes(200 + len(train_names), kind_of(len(train_names)))
            train_names.append(name)
            train_classes.append(class_id)
        for _ in range(2):
            name = f"{len(test_names) + 1:05d}.jpg"  # the same names as train: ids must still differ
            test[f"cars_test/{name}"] = image_bytes(300 + len(test_names))
            test_names.append(name)
            test_classes.append(class_id)
    devkit = {
        "devkit/cars_meta.mat": mat_bytes({"class_names": class_names_array(CARS_CLASSES)}),
        "devkit/cars_train_annos.mat": mat_bytes(
            {"annotations": cars_annotations(train_names, train_classes, "fname")}
        ),
        "devkit/README.txt": b"devkit",
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_tar(folder / "cars_train.tgz", train)
    write_tar(folder / "cars_test.tgz", test)
    write_tar(folder / "car_devkit.tgz", devkit)
    labels = mat_bytes({"annotations": cars_annotations(test_names, test_classes, "fname")})
    (folder / "cars_test_annos_withlabels.mat").write_bytes(labels)
    expected = Expected(
        class_names=CARS_CLASSES,
        counts={"train": 2 + 4 + 4, "val": 3, "test": 6},  # val: 1 per class from the usable train images
        rejected={"cars_train/00001.jpg": "unreadable", "cars_train/00005.jpg": "too small"},
    )
    return folder, expected


def cars_all_in_one_zip(folder: Path) -> tuple[Path, Expected]:
    """The car_ims + cars_annos.mat release, zipped inside a wrapper folder."""
    names, classes, test_flags, members = [], [], [], {}
    for class_id in range(1, len(CARS_CLASSES) + 1):
        for n in range(7):
            name = f"car_ims/{len(names) + 1:06d}.jpg"
            members[f"stanford_cars/{name}"] = image_bytes(400 + len(names))
            names.append(name)
            classes.append(class_id)
            test_flags.append(int(n >= 5))
    members["stanford_cars/cars_annos.mat"] = mat_bytes(
        {
            "annotations": cars_annotations(names, classes, "relative_im_path", test_flags),
            "class_names": class_names_array(CARS_CLASSES),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    expected = Expected(class_names=CARS_CLASSES, counts={"train": 12, "val": 3, "test": 6})
    return write_zip(folder / "stanford_cars.zip", members), expected


# --- HTTP ---------------------------------------------------------------------------------


@dataclass
class FileServer:
    """What the local server serves and what it saw."""

    url: str
    files: dict[str, bytes]
    drop_first: set[str] = field(default_factory=set)  # paths whose first GET stops halfway
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: http.server.ThreadingHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: FileServer = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, self.headers.get("Range")))
        if self.path not in state.files:
            self.send_error(404)
            return
        data = state.files[self.path]
        start = _range_start(self.headers.get("Range"))
        if start >= len(data) and start > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        body = data[start:]
        if self.path in state.drop_first:
            state.drop_first.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the client sees a short body
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return 0
    return int(header[len("bytes=") : -1])


@contextmanager
def serve(files: dict[str, bytes], drop_first: set[str] | None = None) -> Iterator[FileServer]:
    """Serve `files` ({'/path': bytes}) on 127.0.0.1 at a free port until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = FileServer(f"http://127.0.0.1:{server.server_address[1]}", files, set(drop_first or ()))
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
