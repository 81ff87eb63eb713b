"""The offline `demo` dataset: small augmented views of photos bundled with scikit-image.

Nothing is downloaded and nothing is shipped in this repository: the photos come from the
installed scikit-image wheel (skimage/data/), all bundled, none needing pooch:
  cat        chelsea.png           CC0 (Stefan van der Walt)
  coffee cup coffee.png            CC0 (Rachel Michetti)
  rocket     rocket.jpg            public domain (SpaceX)
  astronaut  astronaut.png         public domain (NASA)
  motorcycle motorcycle_{left,right}.png  Middlebury 2014 stereo set (not in the default classes)

Each image is a random resized crop around the object (whole object kept, margins and
aspect ratio varied), maybe mirrored, with a small brightness/contrast/saturation change,
drawn from item_rng("demo", class, split, index): the same settings give the same bytes.
Every split is made from the same photos, so the demo tests the pipeline, not accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
import skimage
import skimage.data
from PIL import Image, ImageEnhance

from varireal.datasets.layout import SPLITS, Candidate, Collected, safe_folder_names
from varireal.io import save_image
from varireal.seeding import item_rng
from varireal.settings.fetch import DemoParams


@dataclass(frozen=True)
class Photo:
    name: str  # the file in skimage/data/
    load: Callable[[], np.ndarray]
    box: tuple[int, int, int, int]  # the object, x0 y0 x1 y1 in pixels, drawn by eye


PHOTOS: dict[str, list[Photo]] = {
    "cat": [Photo("chelsea.png", skimage.data.chelsea, (0, 0, 415, 300))],
    "coffee cup": [Photo("coffee.png", skimage.data.coffee, (75, 15, 480, 390))],
    "rocket": [Photo("rocket.jpg", skimage.data.rocket, (295, 120, 345, 410))],
    "astronaut": [Photo("astronaut.png", skimage.data.astronaut, (15, 10, 365, 512))],
    "motorcycle": [
        Photo("motorcycle_left.png", lambda: skimage.data.stereo_motorcycle()[0], (90, 75, 690, 455)),
        Photo("motorcycle_right.png", lambda: skimage.data.stereo_motorcycle()[1], (45, 55, 635, 455)),
    ],
}
MAX_ASPECT = 4 / 3  # crops stay between 3:4 and 4:3, so the short side is >= 3/4 of long_side


def collect(params: DemoParams, download_dir: Path) -> Collected:
    """Render the demo images into `<download_dir>/demo/rendered/` and list them as candidates."""
    render_dir = download_dir / "demo" / "rendered"
    folders = safe_folder_names(params.classes)
    per_split = {"train": params.train_per_class, "val": params.val_per_class, "test": params.test_per_class}
    candidates = []
    for class_index, class_name in enumerate(params.classes):
        photos = [(photo, Image.fromarray(photo.load())) for photo in PHOTOS[class_name]]
        for split in SPLITS:
            for index in range(per_split[split]):
                rng = item_rng("demo", class_name, split, index)
                photo, image = photos[int(rng.integers(len(photos)))]
                image_id = f"{folders[class_index]}_{split}_{index:03d}"
                file = render_dir / f"{image_id}.jpg"
                save_image(file, augment(image, photo.box, rng, params.long_side))
                candidates.append(Candidate(image_id, class_index, split, file, f"skimage.data:{photo.name}"))
    used = sorted({photo.name for name in params.classes for photo in PHOTOS[name]})
    provenance = [
        {"package": "scikit-image", "version": skimage.__version__, "photos": used, "pillow": PIL.__version__}
    ]
    return Collected(list(params.classes), candidates, provenance, paper_trains_on_val=True)


def augment(
    image: Image.Image, box: tuple[int, int, int, int], rng: np.random.Generator, long_side: int
) -> Image.Image:
    crop = image.crop(crop_around(box, image.size, rng))
    scale = long_side / max(crop.size)
    view = crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.LANCZOS
    )
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer, spread in ((ImageEnhance.Brightness, 0.15), (ImageEnhance.Contrast, 0.15), (ImageEnhance.Color, 0.2)):
        view = enhancer(view).enhance(float(rng.uniform(1 - spread, 1 + spread)))
    return view


def crop_around(
    box: tuple[int, int, int, int], size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A crop holding the object plus a random margin, its aspect ratio within 3:4..4:3."""
    x0, y0, x1, y1 = box
    image_w, image_h = size
    width = min((x1 - x0) * rng.uniform(1.05, 1.6), image_w)
    height = min((y1 - y0) * rng.uniform(1.05, 1.6), image_h)
    # Widen the narrow side (thin rocket), then trim where the photo ends (cat fills its photo).
    width, height = max(width, height / MAX_ASPECT), max(height, width / MAX_ASPECT)
    width, height = min(width, image_w), min(height, image_h)
    width = min(width, height * MAX_ASPECT)
    height = min(height, width * MAX_ASPECT)
    centre_x = (x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * (x1 - x0)
    centre_y = (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * (y1 - y0)
    left = float(np.clip(centre_x - width / 2, 0, image_w - width))
    top = float(np.clip(centre_y - height / 2, 0, image_h - height))
    return round(left), round(top), round(left + width), round(top + height)
