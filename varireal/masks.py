"""Object masks: detector box -> SAM 2 box-prompted mask -> largest filled contour.

One mask per real training image serves every attribute and feasibility setting. Images
are seen as a padded square of `work_size` px (as the paper's 1024 px) and the mask is
mapped back to the original size at the end. When the detector finds no box above its
thresholds, SAM 2 is prompted with the whole image instead and the record says so
(`status = fallback`); the paper used a background-removal matte there.

This module (with the detector and SAM 2 loaders) is the code a mask's key fingerprints
(varireal.keys); varireal.mask_set stores, resumes and shares the work between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from varireal.images import ImageReadError, read_image_rgb

RECORD_COLUMNS = [
    "id",
    "mask_path",
    "status",
    "reason",
    "class_name",
    "detector_text",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "score",
    "area_fraction",
]


@dataclass(frozen=True)
class MaskJob:
    id: str
    image_path: Path
    class_name: str
    detector_text: str


@dataclass(frozen=True)
class MaskSettings:
    work_size: int
    box_threshold: float
    text_threshold: float
    batch_size: int
    box: str = "top_score"  # first: the first box above the threshold in query order (the reference's)


@dataclass(frozen=True)
class Square:
    """An image resized so its long side is `size` and padded (bottom/right) to size x size."""

    pixels: np.ndarray  # size x size x 3, uint8
    scale: float
    original_size: tuple[int, int]  # (width, height)

    @property
    def content_box(self) -> np.ndarray:
        width, height = self.original_size
        return np.array([0, 0, width * self.scale, height * self.scale], dtype=np.float32)


def detector_text(template: str, prefix: str, class_name: str) -> str:
    """Grounding DINO expects lower-case text ending in a period; collapse double spaces."""
    text = " ".join(template.format(prefix=prefix, class_name=class_name).split()).lower()
    return text if text.endswith(".") else text + "."


def to_square(image: Image.Image, size: int) -> Square:
    scale = size / max(image.size)
    width, height = (max(1, round(side * scale)) for side in image.size)
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[:height, :width] = np.asarray(resized)
    return Square(pixels, scale, image.size)


def detect_boxes(
    detector: tuple[Any, Any], squares: Sequence[Square], texts: Sequence[str], settings: MaskSettings
) -> list[tuple[np.ndarray, float] | None]:
    """One box per image (square coordinates): the highest-scoring or, with `box: first`, the first above the
    threshold in the detector's query order, as the reference kept it; None when nothing passes."""
    processor, model = detector
    inputs = processor(images=[s.pixels for s in squares], text=list(texts), return_tensors="pt", padding=True)
    inputs = inputs.to(model.device)
    with torch.inference_mode():
        outputs = model(**inputs)
    results = processor.post_process_grounded_object_detection(
        outputs,
        inputs["input_ids"],
        threshold=settings.box_threshold,
        text_threshold=settings.text_threshold,
        target_sizes=[(settings.work_size, settings.work_size)] * len(squares),
    )
    best: list[tuple[np.ndarray, float] | None] = []
    for result in results:
        if len(result["scores"]) == 0:
            best.append(None)
            continue
        top = 0 if settings.box == "first" else int(torch.argmax(result["scores"]))
        best.append((result["boxes"][top].float().cpu().numpy(), float(result["scores"][top])))
    return best


def segment(predictor: Any, squares: Sequence[Square], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One boolean SAM 2 mask per square for its box prompt (single-mask output)."""
    predictor.set_image_batch([s.pixels for s in squares])
    masks, _, _ = predictor.predict_batch(
        box_batch=[np.asarray(b, dtype=np.float32) for b in boxes], multimask_output=False
    )
    return [np.asarray(m).reshape(m.shape[-2:]) > 0 for m in masks]


def largest_filled_contour(mask: np.ndarray) -> np.ndarray:
    """Keep the largest outer contour, holes filled: the object, without stray specks."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(mask.shape, dtype=np.uint8)
    if contours:
        largest = max(contours, key=cv2.contourArea)
        cv2.drawContours(filled, [largest], -1, color=1, thickness=cv2.FILLED)
    return filled.astype(bool)


def box_mask(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = np.round(box).astype(int)
    mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask


def to_original(mask: np.ndarray, square: Square) -> Image.Image:
    """Crop the padding away and resize (nearest) back to the source image's size."""
    width, height = square.original_size
    content = mask[: max(1, round(height * square.scale)), : max(1, round(width * square.scale))]
    image = Image.fromarray(content.astype(np.uint8) * 255, mode="L")
    return image.resize((width, height), Image.Resampling.NEAREST)


def mask_batch(
    jobs: Sequence[MaskJob], detector: tuple[Any, Any], predictor: Any, settings: MaskSettings
) -> list[tuple[dict[str, Any], Image.Image | None]]:
    """(record, mask) per job, in order; an unreadable image gets a record with its reason and no mask."""
    readable: list[tuple[MaskJob, Square]] = []
    results: dict[str, tuple[dict[str, Any], Image.Image | None]] = {}
    for job in jobs:
        try:
            readable.append((job, to_square(read_image_rgb(job.image_path), settings.work_size)))
        except ImageReadError as err:
            results[job.id] = (_record(job, "unreadable", str(err)), None)
    if readable:
        squares = [square for _, square in readable]
        detections = detect_boxes(detector, squares, [job.detector_text for job, _ in readable], settings)
        boxes = [d[0] if d is not None else s.content_box for d, s in zip(detections, squares)]
        for (job, square), detection, box, raw in zip(readable, detections, boxes, segment(predictor, squares, boxes)):
            mask = largest_filled_contour(raw)
            reason = (
                ""
                if detection is not None
                else "no detector box above the thresholds; SAM 2 prompted with the whole image"
            )
            if not mask.any():
                mask, reason = (
                    box_mask(box, mask.shape),
                    (reason + "; " if reason else "") + "empty SAM 2 mask; box used as mask",
                )
            original = to_original(mask, square)
            record = _record(job, "detected" if detection is not None else "fallback", reason)
            record.update(_box_fields(box / square.scale, detection[1] if detection is not None else None))
            record["area_fraction"] = round(float(np.asarray(original).mean() / 255.0), 6)
            results[job.id] = (record, original)
    return [results[job.id] for job in jobs]


def _record(job: MaskJob, status: str, reason: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "mask_path": f"masks/{job.id}.png" if status != "unreadable" else "",
        "status": status,
        "reason": reason,
        "class_name": job.class_name,
        "detector_text": job.detector_text,
        "box_x0": None,
        "box_y0": None,
        "box_x1": None,
        "box_y1": None,
        "score": None,
        "area_fraction": None,
    }


def _box_fields(box: np.ndarray, score: float | None) -> dict[str, Any]:
    x0, y0, x1, y1 = (round(float(v), 2) for v in box)
    return {"box_x0": x0, "box_y0": y0, "box_x1": x1, "box_y1": y1, "score": None if score is None else round(score, 6)}


def mask_one(
    image_path: Path, class_name: str, params: Any, lock: Any, device: str
) -> tuple[dict[str, Any], Image.Image | None]:
    """The masks stage's detector + SAM 2 on one image (params: the loaded params.yaml; lock: the models lock).

    Returns the manifest record and the mask, None when the image could not be read.
    """
    from varireal.models.load import load_detector, load_segmenter

    settings = params.masks.pick(params.profile)
    text = detector_text(settings.text_template, params.prefix, class_name)
    [(record, mask)] = mask_batch(
        [MaskJob(image_path.stem, image_path, class_name, text)],
        load_detector(lock.path("detector"), device),
        load_segmenter(lock.path("segmenter"), device),
        MaskSettings(settings.work_size, settings.box_threshold, settings.text_threshold, 1, settings.box),
    )
    return record, mask
