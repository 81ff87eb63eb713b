"""Pure image operations of the edit methods (PIL/NumPy/OpenCV, no models).

The pipelines see a padded square of `work_size` px (long side resized, padding bottom/right,
as in varireal.masks); results are cropped and resized back to the source size, and the final
composite takes pixels from the ORIGINAL image through the ORIGINAL mask, so the part that
must not change is bit-identical to the source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageColor, ImageFilter

MASK_THRESHOLD = 127  # mask pixels above this are the object


@dataclass(frozen=True)
class WorkSquare:
    """A source image and its object mask as the pipelines see them, plus how to map back."""

    original: Image.Image  # RGB, source size
    object_mask: np.ndarray  # bool, source size (H, W): the original mask > 127
    image: Image.Image  # RGB, size x size, padding black
    mask: np.ndarray  # bool, size x size: the object in the square (False in the padding)
    content: tuple[int, int]  # (width, height) of the image inside the square

    @property
    def size(self) -> int:
        return self.image.size[0]


def object_mask(mask: Image.Image) -> np.ndarray:
    return np.asarray(mask.convert("L")) > MASK_THRESHOLD


def work_square(original: Image.Image, mask: Image.Image, size: int) -> WorkSquare:
    """Resize the long side to `size` (bicubic image, nearest mask) and pad to a square."""
    if original.size != mask.size:
        raise ValueError(f"mask is {mask.size[0]}x{mask.size[1]} px but the image is {original.size[0]}x{original.size[1]} px")
    scale = size / max(original.size)
    content = (max(1, round(original.size[0] * scale)), max(1, round(original.size[1] * scale)))
    image = Image.new("RGB", (size, size))
    image.paste(original.resize(content, Image.Resampling.BICUBIC), (0, 0))
    square_mask = np.zeros((size, size), dtype=bool)
    small = mask.convert("L").resize(content, Image.Resampling.NEAREST)
    square_mask[: content[1], : content[0]] = np.asarray(small) > MASK_THRESHOLD
    return WorkSquare(original, object_mask(mask), image, square_mask, content)


def to_original_size(edited: Image.Image, square: WorkSquare) -> Image.Image:
    """Crop the padding away and resize the work-square result to the source size."""
    if edited.size != (square.size, square.size):
        edited = edited.resize((square.size, square.size), Image.Resampling.BICUBIC)
    content = edited.convert("RGB").crop((0, 0, *square.content))
    return content.resize(square.original.size, Image.Resampling.BICUBIC)


def keep_object(square: WorkSquare, edited: Image.Image) -> Image.Image:
    """Background edit: edited pixels outside the mask, the ORIGINAL object pixels inside."""
    return _where(square.object_mask, square.original, to_original_size(edited, square))


def keep_background(square: WorkSquare, edited: Image.Image) -> Image.Image:
    """Color/texture edit: edited pixels inside the mask, the ORIGINAL background outside."""
    return _where(square.object_mask, to_original_size(edited, square), square.original)


def _where(mask: np.ndarray, inside: Image.Image, outside: Image.Image) -> Image.Image:
    pixels = np.where(mask[..., None], np.asarray(inside.convert("RGB")), np.asarray(outside.convert("RGB")))
    return Image.fromarray(pixels.astype(np.uint8), mode="RGB")


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """Grow a boolean mask by `px` pixels (elliptical kernel, so corners grow round)."""
    if px <= 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def soft_mask(mask: np.ndarray, blur_px: float) -> Image.Image:
    """A boolean mask as an 8-bit L image, Gaussian-blurred so inpainting blends across its edge."""
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return image.filter(ImageFilter.GaussianBlur(blur_px)) if blur_px > 0 else image


def mask_image(mask: np.ndarray) -> Image.Image:
    return soft_mask(mask, 0)


def paste(base: Image.Image, top: Image.Image, mask: np.ndarray) -> Image.Image:
    """`top` where mask, `base` elsewhere (same size)."""
    return _where(mask, top, base)


def blend(image: Image.Image, overlay: np.ndarray | Image.Image, mask: np.ndarray, alpha: float) -> Image.Image:
    """image * (1 - a) + overlay * a inside the mask; untouched outside. overlay: an image or one RGB colour."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    over = np.asarray(overlay.convert("RGB"), dtype=np.float32) if isinstance(overlay, Image.Image) else np.asarray(overlay, dtype=np.float32)
    mixed = pixels * (1 - alpha) + over * alpha
    out = np.where(mask[..., None], np.clip(np.rint(mixed), 0, 255), pixels)
    return Image.fromarray(out.astype(np.uint8), mode="RGB")


def tint(image: Image.Image, mask: np.ndarray, rgb: tuple[int, int, int], alpha: float) -> Image.Image:
    return blend(image, np.array(rgb, dtype=np.float32), mask, alpha)


def fill_from_swatch(swatch: Image.Image, size: int, crop_fraction: float) -> Image.Image:
    """The central `crop_fraction` of a swatch, upscaled to size x size (a texture with no scene edges)."""
    width, height = swatch.size
    crop_w, crop_h = max(1, round(width * crop_fraction)), max(1, round(height * crop_fraction))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return swatch.convert("RGB").crop((left, top, left + crop_w, top + crop_h)).resize((size, size), Image.Resampling.BICUBIC)


def canny(image: Image.Image, low: int, high: int) -> Image.Image:
    """Canny edges as a 3-channel image, the conditioning format of canny ControlNets."""
    edges = cv2.Canny(np.asarray(image.convert("L")), low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), mode="RGB")


def object_only(image: Image.Image, mask: np.ndarray, fill: int = 127) -> Image.Image:
    """The object on flat gray: what the IP-Adapter should look at, without the old background."""
    pixels = np.asarray(image.convert("RGB")).copy()
    pixels[~mask] = fill
    return Image.fromarray(pixels, mode="RGB")


def color_rgb(value: str) -> tuple[tuple[int, int, int], str]:
    """The RGB a color value stands for, and the rule that gave it (recorded in the manifest).

    1. the whole value is a CSS/X11 color name known to PIL (spaces and hyphens dropped):
       "Royal Blue" -> royalblue;
    2. else the longest run of consecutive words that is such a name, leftmost first:
       "royal blue flight suit" -> royalblue, "neon pink" -> pink;
    3. else a colour derived from the value's sha256 (stable across runs and machines).
    """
    words = value.lower().replace("-", " ").split()
    for length in range(len(words), 0, -1):
        for start in range(len(words) - length + 1):
            name = "".join(words[start : start + length])
            try:
                rgb = ImageColor.getrgb(name)
            except ValueError:
                continue
            return (rgb[0], rgb[1], rgb[2]), f"name:{name}"
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return (digest[0], digest[1], digest[2]), "sha256"
