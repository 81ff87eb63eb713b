"""Names from data files that become parts of paths, and the folders a stage may write in.

Image ids and class names come from files this project does not control: dataset list
files, archive members, .mat annotations, the manifests earlier stages left on disk. An id
such as '../../x' would make a stage write outside its output folder, so each id is checked
where it is read (the error names the file and row at fault), and each path a stage writes is
checked again where it is built, which holds even for a caller that skipped the first check.

    check_id("Abyssinian_1", "annotations/trainval.txt:3")       # -> "Abyssinian_1"
    check_class_name("F-16A/B", "variants.txt:41")                # a name, not a path: '/' is fine
    inside(out_dir / "masks" / f"{image_id}.png", out_dir)        # -> the path, or UnsafePathError
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

MAX_ID_LENGTH = 128  # leaves room for what stages append ('_s12c3', '.json') under the 255-byte name limit
MAX_CLASS_NAME_LENGTH = 200
_ID_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")
ALLOWED_ID = f"1-{MAX_ID_LENGTH} of A-Z a-z 0-9 '_' '-' '.', not starting with '.'"


class UnsafePathError(ValueError):
    """An id or class name that cannot safely name a file, or a path outside its output folder."""


def is_safe_id(value: object) -> bool:
    """Whether `value` can be one file or folder name on any OS: no separator, never '.' or '..'."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_ID_LENGTH
        and _ID_CHARACTERS.fullmatch(value) is not None
        and not value.startswith(".")  # '.', '..' and hidden files
    )


def check_id(value: object, where: str) -> str:
    """`value` if it is a safe id (see is_safe_id); else UnsafePathError naming `where` (file:line)."""
    if not is_safe_id(value):
        raise UnsafePathError(f"{where}: unsafe id {value!r}: expected {ALLOWED_ID} (ids become file names)")
    return value  # type: ignore[return-value]  # is_safe_id checked it is a str


def check_class_name(value: object, where: str) -> str:
    """`value` if it is a printable class name; '/' and spaces are fine ('F-16A/B'): a class name
    becomes a folder only through layout.safe_folder_names, whose result is checked with check_id."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_CLASS_NAME_LENGTH
        or any(unicodedata.category(char).startswith("C") for char in value)  # NUL, newlines, invisible marks
    ):
        raise UnsafePathError(
            f"{where}: bad class name {value!r}: expected 1-{MAX_CLASS_NAME_LENGTH} printable characters, "
            "no control characters"
        )
    return value


def inside(path: Path, root: Path) -> Path:
    """`path` if it lies inside `root` once '..' and symlinked folders are resolved; else UnsafePathError.

    The last component is not resolved: a write replaces a file atomically rather than following
    it, and DVC may have linked an output's files into its cache.
    """
    path, root = Path(path), Path(root)
    real_root = root.resolve()
    real = path.parent.resolve() / path.name
    if path.name in ("", "..") or real == real_root or not real.is_relative_to(real_root):
        raise UnsafePathError(
            f"refusing the path {path}: it resolves to {real}, outside its output folder {root} ({real_root})"
        )
    return path


def row_label(path: Path, index: object) -> str:
    """'<file>:<line>' for a row of a CSV read with its default index (the header is line 1), else '<file>, row <n>'."""
    if not isinstance(index, numbers.Integral):
        return f"{path}, row {index!r}"
    return f"{path}:{int(index) + 2}" if Path(path).suffix == ".csv" else f"{path}, row {int(index) + 1}"


def check_manifest(
    table: pd.DataFrame, path: Path, ids: Sequence[str] = (), class_names: Sequence[str] = (), files: Sequence[str] = ()
) -> pd.DataFrame:
    """`table` (as read from `path`, its index unchanged) after checking its id and class-name columns, and
    that its `files` columns (paths relative to the manifest's folder; empty cells allowed) stay in that folder."""
    for column in ids:
        for index, value in table[column].items():
            check_id(value, f"{row_label(path, index)} (column {column!r})")
    for column in class_names:
        for index, value in table[column].items():
            check_class_name(value, f"{row_label(path, index)} (column {column!r})")
    for column in files:
        for index, value in table[column].items():
            if isinstance(value, str) and value:
                try:
                    inside(Path(path).parent / value, Path(path).parent)
                except UnsafePathError as err:
                    raise UnsafePathError(f"{row_label(path, index)} (column {column!r}): {value!r}: {err}") from None
    return table


def check_real_manifest(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The manifest of data/real/<dataset> (datasets/layout.py), checked: ids, class names, image paths."""
    return check_manifest(table, path, ids=("id",), class_names=("class_name",), files=("path",))
