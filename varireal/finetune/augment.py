"""Image transforms of the classifier: the random train augmentation and the fixed eval preprocessing.

Train (`train_transform`), in the reference's order (Finetune/classify/data.py:58-84) when
`randaugment_first` is set: RandAugment on the full image, random resized crop, flip, colour
jitter, grayscale, blur, solarize, then to a normalized tensor. With `randaugment_first: false`
RandAugment comes after the crop and flip instead.

Every random draw comes from torch's generator, which ImageRows seeds per (seed, image, draw)
around each call: no step reads Python's `random` or any other process-wide state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import InterpolationMode, v2

from varireal.settings.train import AugmentParams


def _interpolation(name: str) -> InterpolationMode:
    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


class PilGaussianBlur:
    """With probability p, PIL's GaussianBlur with a radius (standard deviation) drawn from U(low, high).

    The reference's blur (util_data.py:203-219), but its two draws come from torch's generator
    rather than Python's `random`, so the per-image seed decides them.
    """

    def __init__(self, p: float, sigma: tuple[float, float]) -> None:
        self.p = p
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        if not isinstance(image, Image.Image):
            raise TypeError(f"PilGaussianBlur works on PIL images, got {type(image).__name__}")
        # Both numbers are drawn every time, so whether this image is blurred does not shift the
        # draws of the steps after it.
        fires, share = torch.rand(2).tolist()
        if fires >= self.p:
            return image
        low, high = self.sigma
        return image.filter(ImageFilter.GaussianBlur(radius=low + (high - low) * share))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, sigma={self.sigma})"


def train_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], augment: AugmentParams, interpolation: str = "bicubic"
) -> v2.Compose:
    """The train augmentation `augment` describes (module docstring), ending in a normalized float tensor.

    image_size: the crop's side, the model's input size (224 for ViT-B/16, as the reference's crop).
    """
    # Every step works on the PIL image (C code, one thread): torch's kernels on tiny tensors
    # pay more in thread start-up than they compute, in the loader workers above all.
    # Each step is present even when its settings make it a no-op (p 0, ops 0): one shape to read.
    randaugment = v2.RandAugment(num_ops=augment.randaugment_ops, magnitude=augment.randaugment_magnitude)
    crop = v2.RandomResizedCrop(
        image_size,
        scale=augment.crop_scale,
        ratio=augment.crop_ratio,
        interpolation=_interpolation(interpolation),
        antialias=True,
    )
    flip = v2.RandomHorizontalFlip(augment.flip_p)
    jitter = augment.color_jitter
    steps: list[Callable] = [randaugment, crop, flip] if augment.randaugment_first else [crop, flip, randaugment]
    steps += [
        v2.RandomApply(
            [
                v2.ColorJitter(
                    brightness=jitter.brightness, contrast=jitter.contrast, saturation=jitter.saturation, hue=jitter.hue
                )
            ],
            p=jitter.p,
        ),
        v2.RandomGrayscale(augment.grayscale_p),
        PilGaussianBlur(augment.blur.p, augment.blur.sigma),
        v2.RandomSolarize(threshold=augment.solarize.threshold, p=augment.solarize.p),  # 8-bit images: 0..255
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]
    return v2.Compose(steps)


def eval_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], interpolation: str = "bicubic"
) -> v2.Compose:
    """Resize the short side, center crop, normalize: CLIP's own test preprocessing."""
    return v2.Compose(
        [
            v2.Resize(image_size, interpolation=_interpolation(interpolation), antialias=True),
            v2.CenterCrop(image_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )
