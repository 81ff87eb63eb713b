"""Atomic file and directory writes, tables and YAML shared by every stage (images: varireal.images)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from PIL import Image


class DuplicateKeyError(ValueError):
    """A YAML mapping that gives one key twice; the message names the file, line and key path."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A killed process leaves at most a `.tmp-*` file behind, never a half-written `path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".tmp-{target.name}.", suffix=target.suffix)
    except OSError as err:  # it names its random file name, which the user never sees
        raise OSError(err.errno, err.strerror, os.fspath(target)) from err
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        with named_os_errors(target, tmp):
            yield tmp
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def named_os_errors(path: str | os.PathLike, *stand_ins: str | os.PathLike) -> Iterator[None]:
    """Re-raise an OSError that names no file, or names one of `stand_ins` (a temporary name), as naming `path`.

    A failed write() or flush() (a full disk, an I/O error) names no file: "[Errno 28] No space
    left on device" alone does not say which disk filled up.
    """
    try:
        yield
    except OSError as err:
        if err.errno is None or (err.filename is not None and not _is_one_of(err.filename, stand_ins)):
            raise
        raise OSError(err.errno, err.strerror, os.fspath(path)) from err


def _is_one_of(filename: object, paths: tuple[str | os.PathLike, ...]) -> bool:
    return isinstance(filename, (str, os.PathLike)) and any(os.fspath(filename) == os.fspath(p) for p in paths)


@contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty directory beside `path`; it replaces `path` only if the block succeeds.

    A failed block leaves `path` as it was, byte for byte. An OSError naming a file in the staging
    directory is re-raised naming that file under `path`, where the user will look for it. A killed
    process leaves at most `.<name>.staging-<pid>` (or, killed between the two renames of the swap,
    `.<name>.replaced-<pid>` in place of `path`) beside it: the next call clears (or puts back) those.
    While it exists the staging directory holds a `.gitignore` of `*`: `git add reports` after a
    kill (the README commits `reports`) passes over the half-written folder.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(target)
    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    staging.mkdir()
    (staging / ".gitignore").write_text("*\n")
    try:
        try:
            yield staging
        except OSError as err:
            named = _moved(err.filename, staging, target)
            if err.errno is None or named is None:
                raise
            raise OSError(err.errno, err.strerror, named) from err
        (staging / ".gitignore").unlink()
        _swap(staging, target)
    finally:
        _remove(staging)


def _moved(filename: object, staging: Path, target: Path) -> str | None:
    """`filename` under `target` when it lies in `staging`, else None."""
    if not isinstance(filename, (str, os.PathLike)):
        return None
    name, root = Path(os.path.abspath(filename)), Path(os.path.abspath(staging))
    return os.fspath(target / name.relative_to(root)) if name.is_relative_to(root) else None


def _swap(staging: Path, target: Path) -> None:
    """Put `staging` at `target`: two renames, each atomic, then the old directory goes."""
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    replaced = target.parent / f".{target.name}.replaced-{os.getpid()}"
    os.rename(target, replaced)
    os.rename(staging, target)
    _remove(replaced)  # what stays (a file held open elsewhere) the next call clears


def _clear_leftovers(target: Path) -> None:
    """Remove what killed runs of `staged_directory` left beside `target`; put back an old one the swap had moved."""
    for name in sorted(os.listdir(target.parent)):
        leftover = target.parent / name
        if name.startswith(f".{target.name}.replaced-") and not os.path.lexists(target):
            os.rename(leftover, target)  # killed between the swap's two renames: the old one is the last good one
        elif name.startswith((f".{target.name}.replaced-", f".{target.name}.staging-")):
            _remove(leftover)


def _remove(path: Path) -> None:
    """Remove a folder or whatever else lies at `path`, as far as possible: leftovers must not fail a run."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(OSError):
            path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def save_image(path: str | os.PathLike, image: Image.Image) -> None:
    """Save without timestamps or other varying metadata, so equal pixels give equal bytes."""
    fmt = "PNG" if Path(path).suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        if fmt == "PNG":
            image.save(tmp, format="PNG", optimize=False)
        else:
            image.save(tmp, format="JPEG", quality=95)


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a manifest with a fixed column order: `.parquet` for the large ones (typed, compressed,
    columnar), CSV otherwise (diffable, readable by any tool). Same table, same bytes."""
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".parquet":
            table.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
        else:
            table.to_csv(tmp, index=False, lineterminator="\n")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A manifest (CSV or parquet); identifier columns (`id`, `*_id`) stay text, so '0034309' keeps its zeros."""
    if Path(path).suffix == ".parquet":
        table = pd.read_parquet(path, engine="pyarrow")
        ids = [name for name in table.columns if name == "id" or name.endswith("_id")]
        return table.astype({name: str for name in ids}) if ids else table
    header = pd.read_csv(path, nrows=0).columns
    text = {name: str for name in header if name == "id" or name.endswith("_id")}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=text)


def read_yaml(text: str, path: Path) -> Any:
    """YAML as safe_load reads it, but a key given twice in one mapping is an error (DuplicateKeyError,
    naming the file, line and key path), as in DVC: safe_load would silently keep the last value."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(loader, node, (), path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.Node, keys: tuple[str, ...], path: Path) -> None:
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(loader, item, (*keys, str(index)), path)
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges a mapping in: not a key of its own, and later keys may override it
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise DuplicateKeyError(
                f"{path}: line {line}: duplicate key {'.'.join((*keys, str(key)))} (first given on line {first_line[key]}); "
                "YAML would keep only the last value and DVC refuses the file: keep one"
            )
        first_line[key] = line
        _refuse_duplicate_keys(loader, value_node, (*keys, str(key)), path)
