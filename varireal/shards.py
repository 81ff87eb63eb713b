"""Image sets packed into tar shards (the webdataset layout), with random access by offset.

A shard is a plain POSIX tar of samples, each `<key>.png` followed by `<key>.json` (its
provenance), in the order given. Member headers carry no time, owner or mode of this machine,
so the same samples give the same bytes. Writing returns where each member's data lies
(offset, size): a manifest keeps them, so a reader seeks straight to one image without
scanning the tar, and any tar or webdataset reader (`datasets.load_dataset("webdataset")`,
`webdataset.WebDataset`, `tar -x`) reads the shard as it is.

Why tar and not one file per image: DVC hashes, lists and transfers every file of a directory
output, which at 10^5-10^6 images takes hours (iterative/dvc#7607, #7681, #6222); a few
hundred-megabyte shards take seconds. `python -m benchmarks.shards` measures it.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from varireal.io import atomic_path
from varireal.safe_paths import is_safe_id


@dataclass(frozen=True)
class Sample:
    """One image and its record, stored as `<key>.png` and `<key>.json`."""

    key: str
    image: bytes | None  # None: a record without an image (e.g. an item that was skipped)
    record: dict[str, Any]


@dataclass(frozen=True)
class Located:
    """Where a sample's image bytes lie inside its shard (offset -1: the sample has no image)."""

    key: str
    offset: int
    size: int


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _check_key(key: str) -> None:
    # webdataset splits a member name at its first dot into key and extension; a safe id keeps
    # `tar -x` of a shard inside the folder it unpacks into.
    if "." in key or key.startswith("-") or not is_safe_id(key):
        raise ValueError(
            f"shard sample key {key!r}: must be a non-empty safe id (A-Z a-z 0-9 '_' '-'), without '.' or a leading '-'"
        )


def encode_record(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_shard(path: str | Path, samples: Iterable[Sample]) -> list[Located]:
    """Write the samples into a tar at `path` atomically; return where each image's bytes lie."""
    located = []
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            _check_key(sample.key)
            offset = -1
            if sample.image is not None:
                member = _member(f"{sample.key}.png", len(sample.image))
                offset = tar.offset + len(member.tobuf(tar.format, tar.encoding, tar.errors))  # after its header
                tar.addfile(member, io.BytesIO(sample.image))
            data = encode_record(sample.record)
            tar.addfile(_member(f"{sample.key}.json", len(data)), io.BytesIO(data))
            located.append(Located(sample.key, offset, len(sample.image) if sample.image is not None else 0))
    return located


def read_member(path: str | Path, offset: int, size: int) -> bytes:
    """The `size` bytes at `offset` of a shard: one image, without reading the rest."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"{path}: expected {size} bytes at offset {offset}, found {len(data)} (truncated shard?)")
    return data


def _members(path: str | Path, with_images: bool) -> Iterator[Sample]:
    """Samples in order; a png is read only if `with_images` (else its Sample.image is b"")."""
    with tarfile.open(path, "r:") as tar:
        pending: dict[str, bytes] = {}
        for member in tar:
            key, _, ext = member.name.partition(".")
            if ext == "png":
                handle = tar.extractfile(member) if with_images else None
                pending[key] = handle.read() if handle is not None else b""
            elif ext == "json":
                yield Sample(key, pending.pop(key, None), json.loads(tar.extractfile(member).read()))  # type: ignore[union-attr]
        end = tar.offset
    if pending:
        raise ValueError(f"image(s) without a record: {', '.join(sorted(pending)[:3])}")
    # tarfile reads a file cut exactly between two members as a shorter archive: a whole shard
    # ends with the two zero blocks of the end-of-archive marker, right where reading stopped.
    with open(path, "rb") as handle:
        handle.seek(end)
        if handle.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
            raise ValueError(f"no end-of-archive marker after byte {end}: the shard was cut short")


def _checked(path: str | Path, with_images: bool) -> Iterator[Sample]:
    try:
        yield from _members(path, with_images)
    except (tarfile.TarError, OSError, ValueError) as err:
        raise ValueError(
            f"{path}: not a readable shard ({type(err).__name__}: {err}); delete it and rerun the stage"
        ) from err


def read_samples(path: str | Path) -> Iterator[Sample]:
    """Every sample of a shard in order (records parsed); raises ValueError naming a damaged shard."""
    return _checked(path, with_images=True)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a shard in order, without reading its images (a seek past each one)."""
    return [sample.record for sample in _checked(path, with_images=False)]


SHARD_DIR = "shards"


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
