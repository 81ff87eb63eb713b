"""Pure image operations of the edit methods (PIL/NumPy/OpenCV, no models).

The pipelines see a padded square of `work_size` px (long side resized, padding bottom/right,
as in varireal.masks); results are cropped and resized back to the source size, and the final
composite takes pixels from the ORIGINAL image through the ORIGINAL mask, so the part that
must not change is bit-identical to the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageFilter

MASK_THRESHOLD = 127  # mask pixels above this are the object
# How a blend's floats become 8-bit: truncate, as the reference's `.astype(np.uint8)` (color_gen.py:441-442,
# texture_gen.py:313), or round to the nearest level.
Rounding = Literal["truncate", "round"]
# How the swatch window is upscaled: OpenCV's INTER_CUBIC, the reference's (texture_gen.py:338), or PIL's bicubic.
Upscale = Literal["cv2_cubic", "pil_bicubic"]


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
        raise ValueError(
            f"mask is {mask.size[0]}x{mask.size[1]} px but the image is {original.size[0]}x{original.size[1]} px"
        )
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


def dilate(mask: np.ndarray, size: int, kernel: str) -> np.ndarray:
    """Grow a boolean mask with a `size` x `size` kernel: "square" (np.ones, as the reference's cv2.dilate;
    an even side grows size/2 px down/right, size/2 - 1 up/left) or "ellipse" (corners grow round)."""
    if size <= 1:
        return mask.copy()
    if kernel == "square":
        shape = np.ones((size, size), dtype=np.uint8)
    elif kernel == "ellipse":
        shape = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    else:
        raise ValueError(f"dilation kernel={kernel!r}: expected square or ellipse")
    return cv2.dilate(mask.astype(np.uint8), shape).astype(bool)


def soft_mask(mask: np.ndarray, blur_px: float) -> Image.Image:
    """A boolean mask as an 8-bit L image, Gaussian-blurred so inpainting blends across its edge."""
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return image.filter(ImageFilter.GaussianBlur(blur_px)) if blur_px > 0 else image


def mask_image(mask: np.ndarray) -> Image.Image:
    return soft_mask(mask, 0)


def paste(base: Image.Image, top: Image.Image, mask: np.ndarray) -> Image.Image:
    """`top` where mask, `base` elsewhere (same size)."""
    return _where(mask, top, base)


def blend(
    image: Image.Image,
    overlay: np.ndarray | Image.Image,
    mask: np.ndarray,
    alpha: float,
    rounding: Rounding = "round",
) -> Image.Image:
    """image * (1 - a) + overlay * a inside the mask; untouched outside. overlay: an image or one RGB colour.

    In float64, as the reference computes it: in float32 a mix that should land on a whole level can fall
    just below it, which truncation would then turn into the level under it."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    over = (
        np.asarray(overlay.convert("RGB"), dtype=np.float64)
        if isinstance(overlay, Image.Image)
        else np.asarray(overlay, dtype=np.float64)
    )
    mixed = pixels * (1 - alpha) + over * alpha
    out = np.where(mask[..., None], levels(mixed, rounding), pixels)
    return Image.fromarray(out.astype(np.uint8), mode="RGB")


def levels(values: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Floats on the 0-255 scale as 8-bit levels: cut (the reference's astype(uint8)) or rounded half to even
    (numpy's, as diffusers converts its outputs), kept inside 0-255."""
    return np.clip(np.trunc(values) if rounding == "truncate" else np.round(values), 0, 255).astype(np.uint8)


def pipeline_images(pixels: np.ndarray, rounding: Rounding) -> list[Image.Image]:
    """A pipeline's output_type="np" batch (floats in 0-1) as RGB images; `round` gives diffusers' own PIL
    output byte for byte, `truncate` the reference's (its generators' post_process, main_pipeline.py:208-209)."""
    return [Image.fromarray(levels(image * 255, rounding), mode="RGB") for image in pixels]


def tint(
    image: Image.Image, mask: np.ndarray, rgb: tuple[int, int, int], alpha: float, rounding: Rounding = "round"
) -> Image.Image:
    return blend(image, np.array(rgb, dtype=np.float64), mask, alpha, rounding)


SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32)  # the reference's (texture_gen.py:340)


def crop_size(swatch_size: tuple[int, int], crop_fraction: float) -> tuple[int, int]:
    width, height = swatch_size
    return max(1, round(width * crop_fraction)), max(1, round(height * crop_fraction))


def fill_from_swatch(
    swatch: Image.Image,
    size: int,
    crop_fraction: float,
    corner: tuple[int, int] | None = None,
    *,
    sharpen: bool = False,
    upscale: Upscale = "pil_bicubic",
) -> Image.Image:
    """A `crop_fraction` window of a swatch (its top-left at `corner`, central if None), upscaled to size x size
    (a texture with no scene edges), then sharpened if asked."""
    width, height = swatch.size
    crop_w, crop_h = crop_size(swatch.size, crop_fraction)
    left, top = corner if corner is not None else ((width - crop_w) // 2, (height - crop_h) // 2)
    if not (0 <= left <= width - crop_w and 0 <= top <= height - crop_h):
        raise ValueError(
            f"crop corner {(left, top)} puts a {crop_w}x{crop_h} window outside the {width}x{height} swatch"
        )
    window = swatch.convert("RGB").crop((left, top, left + crop_w, top + crop_h))
    if upscale == "cv2_cubic":  # OpenCV's bicubic (a = -0.75) differs from PIL's (a = -0.5): up to 10 levels
        pixels = cv2.resize(np.asarray(window), (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        pixels = np.asarray(window.resize((size, size), Image.Resampling.BICUBIC))
    if sharpen:
        pixels = cv2.filter2D(pixels, -1, SHARPEN)  # saturates to 0-255, as cv2 does
    return Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")


def canny(image: Image.Image, low: int, high: int, *, rgb: bool = False) -> Image.Image:
    """Canny edges as a 3-channel image, the conditioning format of canny ControlNets.

    rgb: over the colour channels (OpenCV takes the strongest gradient per pixel, as the reference runs it);
    else over the grayscale image."""
    pixels = np.asarray(image.convert("RGB")) if rgb else np.asarray(image.convert("L"))
    edges = cv2.Canny(np.ascontiguousarray(pixels), low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), mode="RGB")


def median_low_threshold(image: Image.Image) -> int:
    """The reference's low canny threshold: int(max(0, 0.7 x median of the 5x5 box-blurred RGB image))
    (color_gen.py:372-374, texture_gen.py likewise)."""
    blurred = cv2.blur(np.asarray(image.convert("RGB")), ksize=(5, 5))
    return int(max(0.0, 0.7 * float(np.median(blurred))))


def object_on_white(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """The object's pixels, white (255) everywhere else, padding included: the reference's canny input."""
    return object_only(image, mask, fill=255)


def object_only(image: Image.Image, mask: np.ndarray, fill: int = 127) -> Image.Image:
    """The object on flat gray: what the IP-Adapter should look at, without the old background."""
    pixels = np.asarray(image.convert("RGB")).copy()
    pixels[~mask] = fill
    return Image.fromarray(pixels, mode="RGB")
