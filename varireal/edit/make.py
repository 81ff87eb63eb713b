"""One batch of candidate edits made: inputs read, the attribute's method called, records written.

This module and the attribute's own (varireal.attributes.<name>, with the shared steps it calls)
are the code an edit candidate's key fingerprints (varireal.keys): what decides its pixels and its
record. Which candidates are made, in which batch and shard, and how a run resumes is edit_set's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from varireal.attributes import image_ops as ops
from varireal.attributes.item import EditItem
from varireal.attributes.kind import AttributeMethod
from varireal.attributes.pipelines import Editors
from varireal.attributes.steps import Edited, Job
from varireal.images import ImageReadError, read_image_rgb


def settings_json(settings: Any, work_size: int, details: Mapping[str, Any] | None = None) -> str:
    return json.dumps({"work_size": work_size, **settings.model_dump(mode="json"), **(details or {})}, sort_keys=True)


def models_json(models: Mapping[str, Mapping[str, Any]], compiled: bool = False) -> str:
    """role -> class_name/repo_id/revision/seed/fingerprint, as the lock has them; `compiled` (torch.compile,
    whose kernels may round otherwise) joins the record and the resume key only when on."""
    keep = ("class_name", "repo_id", "revision", "seed", "fingerprint")
    roles = {role: {k: info.get(k) for k in keep} for role, info in sorted(models.items())}
    return json.dumps({**roles, **({"compiled": True} if compiled else {})}, sort_keys=True)


def base_record(method: AttributeMethod, item: EditItem, settings: Any, work_size: int, models: str) -> dict[str, Any]:
    """A candidate's record before it is made (status skipped until the method returns its image)."""
    step = getattr(settings, method.main_step)  # the step whose prompt names the edit (every prompt is in settings)
    return {
        "edit_id": item.edit_id,
        "status": "skipped",
        "reason": "",
        "source_id": item.source.id,
        "source_path": item.source.path.as_posix(),
        "class_name": item.source.class_name,
        "class_index": item.source.class_index,
        "attribute": item.attribute,
        "feasibility": item.feasibility,
        "value": item.value,
        "description": item.description,
        "prompt": item.fill(step.prompt),
        "negative_prompt": item.fill(step.negative_prompt),
        "seed": item.seed,
        "slot": item.slot,
        "candidate": item.candidate,
        "mask_id": item.source.id if item.source.mask_path is not None else "",
        "settings": settings_json(settings, work_size),
        "models": models,
        # color: the tint as #rrggbb (a plain string, the same in the JSON record and manifest.parquet) and its table
        "rgb": "#{:02x}{:02x}{:02x}".format(*item.rgb) if item.rgb is not None else "",
        "rgb_source": item.rgb_source,
    }


def read_inputs(item: EditItem, work_size: int) -> ops.WorkSquare:
    """The item's image and mask as a work square; ImageReadError/ValueError say why not."""
    if item.source.mask_path is None:
        raise ValueError(f"no mask: {item.source.mask_problem}")
    image = read_image_rgb(item.source.path)
    try:
        with Image.open(item.source.mask_path) as opened:
            mask = opened.convert("L")
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"{item.source.mask_path}: cannot decode mask ({err})") from err
    square = ops.work_square(image, mask, work_size)
    if not square.object_mask.any():
        raise ValueError(f"{item.source.mask_path}: the mask has no object pixels")
    return square


def edit_one_batch(
    method: AttributeMethod, editors: Editors, batch: Sequence[EditItem], settings: Any, work_size: int, models: str
) -> list[tuple[dict[str, Any], Image.Image | None]]:
    """(record, image or None) per item, in order; an item whose image or mask cannot be read keeps its reason."""
    records = {item.edit_id: base_record(method, item, settings, work_size, models) for item in batch}
    jobs = []
    for item in batch:
        try:
            jobs.append(Job(item, read_inputs(item, work_size)))
        except (ImageReadError, ValueError) as err:
            records[item.edit_id]["reason"] = str(err)
    images: dict[str, Image.Image] = {}
    if jobs:
        results: list[Edited] = method.edit(editors, jobs, settings)
        for job, result in zip(jobs, results):
            records[job.item.edit_id].update(
                status="edited",
                prompt=result.prompt,
                negative_prompt=result.negative_prompt,
                settings=settings_json(settings, work_size, result.details),
            )
            images[job.item.edit_id] = result.image
    return [(records[item.edit_id], images.get(item.edit_id)) for item in batch]
