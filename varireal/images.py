"""Images in and out: tolerant decoding to RGB, and PNG bytes that depend on the pixels alone.

What a stage reads and encodes shapes the items it makes (a mask, an edit candidate), so this module
is in their keys' code (varireal.keys); where the bytes are written is varireal.io's.
"""

from __future__ import annotations

import io
import os

from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message names the file and the reason."""


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
        raise ImageReadError(
            f"{path}: cannot decode image ({'unknown format' if isinstance(err, UnidentifiedImageError) else err})"
        ) from err
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
