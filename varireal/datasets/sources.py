"""From a `SourceParams` to folders on disk, and finding a dataset's files inside them.

Archives are unpacked under `<download_dir>/<dataset>/unpacked/<archive>-<sha256[:12]>`,
so a different archive under the same name never reuses a stale folder; a download that is
no archive (Pets' split file, a .csv) is used where it lies, `<download_dir>/<dataset>/<name>`.
Files are found by the tail of their path (e.g. `annotations/trainval.txt`), which makes
wrapper folders (`oxford-iiit-pet/annotations/...`, Kaggle's `cars_train/cars_train/`) irrelevant.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from varireal.datasets.archives import extract, is_archive
from varireal.datasets.download import download, file_digests
from varireal.settings.fetch import FetchParams, SourceParams


@dataclass(frozen=True)
class Root:
    path: Path  # a folder (an unpacked archive, the user's folder) or one downloaded file
    label: str  # names the origin in manifest `source` values: the archive or folder name


class SourceTree:
    """Every file and folder under a dataset's roots, searchable by path tail."""

    def __init__(self, roots: list[Root], provenance: list[dict[str, Any]]):
        self.roots = roots
        self.provenance = provenance
        self._entries = sorted(
            (entry for root in roots for entry in _walk(root)), key=lambda e: (len(e[1].parts), str(e[1]))
        )

    def find_file(self, *tails: str) -> Path:
        """The shallowest file ending with the first of `tails` found (later ones are alternative names)."""
        for tail in tails[:-1]:
            try:
                return self._find(tail, want_dir=False, containing=None)
            except FileNotFoundError:
                continue
        return self._find(tails[-1], want_dir=False, containing=None)

    def find_dir(self, tail: str, containing: str | None = None) -> Path:
        """The shallowest folder ending with `tail` (that holds a file named `containing`)."""
        return self._find(tail, want_dir=True, containing=containing)

    def source_name(self, path: Path) -> str:
        """'<archive name>:<member path>' for a file under one of the roots."""
        for root in self.roots:
            if path == root.path and root.path.is_file():
                return root.label
            if path.is_relative_to(root.path):
                return f"{root.label}:{path.relative_to(root.path).as_posix()}"
        raise ValueError(f"{path} is not under any source root")

    def _find(self, tail: str, want_dir: bool, containing: str | None) -> Path:
        tail_parts = PurePosixPath(tail).parts
        for is_dir, path in self._entries:
            if is_dir == want_dir and path.parts[-len(tail_parts) :] == tail_parts:
                if containing is None or (path / containing).is_file():
                    return path
        kind = f"folder holding {containing!r}" if containing else ("folder" if want_dir else "file")
        searched = ", ".join(str(root.path) for root in self.roots)
        raise FileNotFoundError(
            f"expected a {kind} ending in {tail!r} inside {searched}; is this the official archive?"
        )


def prepare(dataset: str, source: SourceParams, download_dir: Path, params: FetchParams) -> SourceTree:
    """Download (or take the user's archive) and unpack; return what is on disk and where it came from."""
    work_dir = download_dir / dataset
    if source.archive:
        return _from_local(dataset, Path(source.archive).expanduser(), work_dir)
    if not source.urls:
        raise ValueError(f"fetch.sources.{dataset}: no archive and no urls; set fetch.sources.{dataset}.archive")
    roots, provenance = [], []
    for url, checksum in zip(source.urls, source.checksums):
        name = PurePosixPath(unquote(urlparse(url).path)).name
        got = download(url, work_dir / name, checksum, params.timeout_s, params.retries, params.retry_wait_s)
        unpacked = (
            extract(got.path, work_dir / "unpacked" / f"{name}-{got.sha256[:12]}") if _packed(got.path) else got.path
        )
        roots.append(Root(unpacked, name))
        provenance.append({"url": url, "file": name, "bytes": got.size, "sha256": got.sha256, "pinned": checksum})
    return SourceTree(roots, provenance)


def _from_local(dataset: str, path: Path, work_dir: Path) -> SourceTree:
    if not path.exists():
        raise FileNotFoundError(f"fetch.sources.{dataset}.archive: {path} does not exist")
    roots: list[Root] = [Root(path, path.name)] if path.is_dir() else []
    provenance: list[dict[str, Any]] = [{"folder": str(path)}] if path.is_dir() else []
    archives = sorted(child for child in path.iterdir() if is_archive(child)) if path.is_dir() else [path]
    for archive in archives:
        sha256 = file_digests(archive, set())["sha256"]
        roots.append(Root(extract(archive, work_dir / "unpacked" / f"{archive.name}-{sha256[:12]}"), archive.name))
        provenance.append({"archive": str(archive), "bytes": archive.stat().st_size, "sha256": sha256})
    return SourceTree(roots, provenance)


def _packed(path: Path) -> bool:
    """An archive by its name or, for a url without an archive suffix, by its bytes."""
    return is_archive(path) or tarfile.is_tarfile(path) or zipfile.is_zipfile(path)


def _walk(root: Root) -> list[tuple[bool, Path]]:
    if root.path.is_file():
        return [(False, root.path)]
    entries = []
    for folder, dirs, files in os.walk(root.path):
        base = Path(folder)
        entries += [(True, base / name) for name in dirs] + [(False, base / name) for name in files]
    return entries
