"""Atomic file writes and tolerant image reading shared by every stage."""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message names the file and the reason."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A killed process leaves at most a `.tmp-*` file behind, never a half-written `path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".tmp-{target.name}.", suffix=target.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


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


def read_image_rgb(path: str | os.PathLike, min_side: int = 1, data: bytes | None = None) -> Image.Image:
    """Decode any PIL-readable image into 8-bit RGB, honouring EXIF orientation.

    `data`: the file's bytes when they come from elsewhere (a shard member); `path` then only names
    them in errors. Grayscale, palette, RGBA (composited on white), CMYK and 16-bit inputs are
    converted; truncated or undecodable files and images smaller than `min_side` raise ImageReadError.
    """
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({'unknown format' if isinstance(err, UnidentifiedImageError) else err})") from err
    if min(image.size) < min_side:
        raise ImageReadError(f"{path}: image is {image.size[0]}x{image.size[1]} px, smaller than min_side={min_side}")
    return to_rgb(image)


def png_bytes(image: Image.Image) -> bytes:
    """PNG without timestamps or other varying metadata: equal pixels give equal bytes (as save_image)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")
