"""The batched driver: plan -> (resume) -> edit in batches -> records -> manifest.csv.

Batches are fixed slices of the edit-id-sorted plan, so a resumed run groups items exactly as
an uninterrupted one; a batch whose items are all finished makes no pipeline call. An image or
mask that cannot be read gives a `skipped` row with the reason, and the run goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from PIL import Image
from tqdm import tqdm

from varireal.edit import image_ops as ops
from varireal.edit.methods import Edited, Editors, Job, edit_batch
from varireal.edit.plan import EditItem
from varireal.edit.settings import MethodSettings
from varireal.edit.store import EditStore, FileHashes, item_key
from varireal.io import ImageReadError, read_image_rgb, write_table


def main_step(attribute: str, settings: MethodSettings) -> Any:
    """The step whose prompt names the edit in the manifest (every prompt is in `settings`)."""
    return settings.scene if attribute == "background" else settings.regenerate  # type: ignore[union-attr]


def settings_json(settings: MethodSettings, work_size: int, details: Mapping[str, Any] | None = None) -> str:
    return json.dumps({"work_size": work_size, **settings.model_dump(mode="json"), **(details or {})}, sort_keys=True)


def models_json(models: Mapping[str, Mapping[str, Any]]) -> str:
    """role -> class_name/repo_id/revision/seed/fingerprint, as the lock has them."""
    keep = ("class_name", "repo_id", "revision", "seed", "fingerprint")
    return json.dumps({role: {k: info.get(k) for k in keep} for role, info in sorted(models.items())}, sort_keys=True)


def base_record(item: EditItem, settings: MethodSettings, work_size: int, models: str) -> dict[str, Any]:
    step = main_step(item.attribute, settings)
    return {
        "edit_id": item.edit_id, "path": "", "status": "skipped", "reason": "",
        "source_id": item.source.id, "source_path": item.source.path.as_posix(), "class_name": item.source.class_name,
        "class_index": item.source.class_index, "attribute": item.attribute, "feasibility": item.feasibility,
        "value": item.value, "description": item.description, "prompt": item.fill(step.prompt),
        "negative_prompt": item.fill(step.negative_prompt), "seed": item.seed, "slot": item.slot,
        "candidate": item.candidate, "mask_id": item.source.id if item.source.mask_path is not None else "",
        "settings": settings_json(settings, work_size), "models": models,
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
    editors: Editors, batch: Sequence[EditItem], settings: MethodSettings, work_size: int, models: str
) -> list[tuple[dict[str, Any], Image.Image | None]]:
    records = {item.edit_id: base_record(item, settings, work_size, models) for item in batch}
    jobs = []
    for item in batch:
        try:
            jobs.append(Job(item, read_inputs(item, work_size)))
        except (ImageReadError, ValueError) as err:
            records[item.edit_id]["reason"] = str(err)
    images: dict[str, Image.Image] = {}
    if jobs:
        results: list[Edited] = edit_batch(editors, jobs[0].item.attribute, jobs, settings)
        for job, result in zip(jobs, results):
            records[job.item.edit_id].update(
                status="edited", path=f"images/{job.item.edit_id}.png", prompt=result.prompt,
                negative_prompt=result.negative_prompt, settings=settings_json(settings, work_size, result.details),
            )
            images[job.item.edit_id] = result.image
    return [(records[item.edit_id], images.get(item.edit_id)) for item in batch]


def run_edits(
    items: Sequence[EditItem],
    set_dir: Path,
    editors: Editors,
    settings: MethodSettings,
    *,
    work_size: int,
    batch_size: int,
    models: Mapping[str, Mapping[str, Any]],
    show_progress: bool = True,
) -> pd.DataFrame:
    """Edit every planned item not yet finished, prune what is no longer planned, write manifest.csv."""
    store = EditStore(set_dir)
    items = sorted(items, key=lambda item: item.edit_id)
    if len({item.attribute for item in items}) > 1 or len({item.feasibility for item in items}) > 1:
        raise ValueError("one edit set holds one attribute and one feasibility; got a mixed plan")
    models_text = models_json(models)
    hashes = FileHashes()
    keys = {
        item.edit_id: item_key({
            "image": hashes(item.source.path), "mask": hashes(item.source.mask_path), "mask_problem": item.source.mask_problem,
            "class_name": item.source.class_name, "value": item.value, "description": item.description,
            "prefix": item.prefix, "seed": item.seed, "settings": settings_json(settings, work_size), "models": models_text,
        })
        for item in items
    }
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    todo = [batch for batch in batches if not all(store.finished(item.edit_id, keys[item.edit_id]) for item in batch)]
    label = f"edit {items[0].attribute}/{items[0].feasibility}" if items else "edit"
    counts = {"edited": 0, "skipped": 0}
    with tqdm(total=len(items), initial=len(items) - sum(map(len, todo)), desc=label, unit="edit", disable=not show_progress) as bar:
        for batch in todo:
            for record, image in edit_one_batch(editors, batch, settings, work_size, models_text):
                store.save({**record, "key": keys[record["edit_id"]]}, image)
                counts[record["status"]] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update(len(batch))
    store.prune(set(keys))
    manifest = store.manifest(item.edit_id for item in items)
    write_table(Path(set_dir) / "manifest.csv", manifest)
    return manifest
