"""The batched driver: plan -> shards -> (resume) -> edit in batches -> shard files -> manifest.parquet.

Batches are fixed slices of each shard's sorted items, so a resumed run groups items exactly as
an uninterrupted one; a shard whose items are all finished makes no pipeline call. An image or
mask that cannot be read gives a `skipped` row with the reason, and the run goes on. With a judge
(early stop, varireal.edit.rounds) a shard is edited in rounds of one candidate per open slot, and
the candidates it never needs get `not_needed` rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from tqdm import tqdm

from varireal.codebase import edit_code
from varireal.edit import image_ops as ops
from varireal.edit.items import EditItem
from varireal.edit.methods import Edited, Editors, Job, edit_batch
from varireal.edit.rounds import CandidateJudge, edit_in_rounds
from varireal.edit.settings import MethodSettings
from varireal.edit.store import FileHashes, edit_manifest, item_key, shard_plan
from varireal.io import ImageReadError, png_bytes, read_image_rgb, write_table
from varireal.launch import SINGLE, Ranks
from varireal.shards import Sample, ShardStore


def main_step(attribute: str, settings: MethodSettings) -> Any:
    """The step whose prompt names the edit in the manifest (every prompt is in `settings`)."""
    return settings.scene if attribute == "background" else settings.regenerate  # type: ignore[union-attr]


def settings_json(settings: MethodSettings, work_size: int, details: Mapping[str, Any] | None = None) -> str:
    return json.dumps({"work_size": work_size, **settings.model_dump(mode="json"), **(details or {})}, sort_keys=True)


def models_json(models: Mapping[str, Mapping[str, Any]], compiled: bool = False) -> str:
    """role -> class_name/repo_id/revision/seed/fingerprint, as the lock has them; `compiled` (torch.compile,
    whose kernels may round otherwise) joins the record and the resume key only when on."""
    keep = ("class_name", "repo_id", "revision", "seed", "fingerprint")
    roles = {role: {k: info.get(k) for k in keep} for role, info in sorted(models.items())}
    return json.dumps({**roles, **({"compiled": True} if compiled else {})}, sort_keys=True)


def base_record(item: EditItem, settings: MethodSettings, work_size: int, models: str) -> dict[str, Any]:
    step = main_step(item.attribute, settings)
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
                status="edited",
                prompt=result.prompt,
                negative_prompt=result.negative_prompt,
                settings=settings_json(settings, work_size, result.details),
            )
            images[job.item.edit_id] = result.image
    return [(records[item.edit_id], images.get(item.edit_id)) for item in batch]


def item_keys(items: Sequence[EditItem], settings: MethodSettings, work_size: int, models_text: str) -> dict[str, str]:
    """Per item: the sha256 of everything its pixels depend on."""
    hashes = FileHashes()
    code = edit_code()
    return {
        item.edit_id: item_key(
            {
                "image": hashes(item.source.path),
                "mask": hashes(item.source.mask_path),
                "mask_problem": item.source.mask_problem,
                "class_name": item.source.class_name,
                "value": item.value,
                "description": item.description,
                "prefix": item.prefix,
                "seed": item.seed,
                "settings": settings_json(settings, work_size),
                "models": models_text,
                "rgb": item.rgb,
                "code": code,
            }
        )
        for item in items
    }


def edit_shard(
    editors: Editors,
    shard: Sequence[EditItem],
    keys: Mapping[str, str],
    done: Mapping[str, Sample],
    settings: MethodSettings,
    work_size: int,
    batch_size: int,
    models_text: str,
    judge: CandidateJudge | None = None,
) -> list[Sample]:
    """The shard's samples: finished items kept as they are, the others edited batch by batch
    (with a judge: in rounds, stopping each slot at its first passing candidate; varireal.edit.rounds)."""
    usable = {
        key: sample
        for key, sample in done.items()
        if key in keys and sample.record.get("key") == keys[key] and sample.record.get("status") != "not_needed"
    }

    def generate(batch: Sequence[EditItem]) -> list[Sample]:
        return [
            Sample(
                record["edit_id"],
                png_bytes(image) if image is not None else None,
                {**record, "key": keys[record["edit_id"]]},
            )
            for record, image in edit_one_batch(editors, batch, settings, work_size, models_text)
        ]

    if judge is not None:
        samples, left_out = edit_in_rounds(shard, usable, generate, judge, batch_size)
        for item in shard:
            if item.edit_id in left_out:
                record = base_record(item, settings, work_size, models_text)
                record.update(
                    status="not_needed", reason=left_out[item.edit_id], key=keys[item.edit_id], early_stop=judge.key
                )
                samples[item.edit_id] = Sample(item.edit_id, None, record)
        return [samples[item.edit_id] for item in shard]
    # Without early stop a record carries no answers (a set edited with it before is kept, minus them).
    samples = {
        key: Sample(key, s.image, {k: v for k, v in s.record.items() if k not in ("answers", "early_stop")})
        for key, s in usable.items()
    }
    for start in range(0, len(shard), batch_size):
        batch = shard[start : start + batch_size]
        if any(item.edit_id not in samples for item in batch):
            samples.update({sample.key: sample for sample in generate(batch)})
    return [samples[item.edit_id] for item in shard]


class FinishedElsewhere:
    """Finished samples wherever the old shards hold them, so a plan whose sources moved between
    shards (a real image added or removed) re-edits nothing that is still planned unchanged.

    Shards are rewritten in index order: a sample that moves to a later shard is carried in
    memory from its old shard before that is overwritten; one that moves to an earlier shard is
    read from its old shard, which is not rewritten yet.
    """

    def __init__(self, store: ShardStore, keys: Mapping[str, str]) -> None:
        self.store, self.keys = store, keys
        self.carried: dict[str, Sample] = {}
        self.placed: set[str] = set()  # items of the shards rewritten so far
        self._where: dict[str, int] | None = None

    def where(self) -> dict[str, int]:
        """edit_id -> index of the old shard holding it (read once, records only)."""
        if self._where is None:
            self._where = {}
            for index in self.store.indices():
                for record in self.store.records(index) or []:
                    self._where.setdefault(str(record.get("edit_id")), index)
        return self._where

    def for_shard(self, index: int, shard: Sequence[EditItem]) -> dict[str, Sample]:
        """Samples whose key matches, for the items of shard `index`, about to be rewritten."""
        wanted = {item.edit_id for item in shard}
        pool = {**self.carried, **self.store.samples(index)}
        later = sorted({self.where()[e] for e in wanted - set(pool) if self.where().get(e, -1) > index})
        for other in later:
            pool.update(self.store.samples(other))
        usable = {k: v for k, v in pool.items() if k in self.keys and v.record.get("key") == self.keys[k]}
        self.placed |= wanted
        self.carried = {k: v for k, v in usable.items() if k not in self.placed and self.where().get(k, -1) <= index}
        return {k: v for k, v in usable.items() if k in wanted}


def run_edits(
    items: Sequence[EditItem],
    set_dir: Path,
    editors: Editors,
    settings: MethodSettings,
    *,
    work_size: int,
    batch_size: int,
    shard_images: int,
    models: Mapping[str, Mapping[str, Any]],
    show_progress: bool = True,
    ranks: Ranks = SINGLE,
    compiled: bool = False,
    judge: CandidateJudge | None = None,
) -> pd.DataFrame | None:
    """Edit every planned item not yet finished, shard by shard; prune what is no longer planned; write the manifest.

    With several ranks each writes whole shards r, r + N, ... (a shard's batches are the same for
    any count) and rank 0 prunes and writes the manifest once all are done; the others return None.
    judge: early stop (varireal.edit.rounds); a slot's later candidates are `not_needed` once one passes.
    """
    if len({item.attribute for item in items}) > 1 or len({item.feasibility for item in items}) > 1:
        raise ValueError("one edit set holds one attribute and one feasibility; got a mixed plan")
    store = ShardStore(set_dir, "edits")
    models_text = models_json(models, compiled)
    keys = item_keys(items, settings, work_size, models_text)
    shards = shard_plan(items, shard_images)
    finished = FinishedElsewhere(store, keys)
    label = ranks.label(f"edit {items[0].attribute}/{items[0].feasibility}" if items else "edit")
    mine = ranks.mine(len(shards))
    with tqdm(total=sum(len(shards[i]) for i in mine), desc=label, unit="edit", disable=not show_progress) as bar:
        for index in mine:
            shard = shards[index]
            recorded = store.records(index) or []
            stop_key = judge.key if judge is not None else None
            if [(r.get("edit_id"), r.get("key"), r.get("early_stop")) for r in recorded] != [
                (i.edit_id, keys[i.edit_id], stop_key) for i in shard
            ]:
                # Another rank may rewrite a shard this one reads finished samples from: writes are
                # atomic, and a sample not found is edited again (the same bytes), never lost.
                done = finished.for_shard(index, shard)
                store.write(
                    index, edit_shard(editors, shard, keys, done, settings, work_size, batch_size, models_text, judge)
                )
            bar.update(len(shard))
    if not ranks.join():
        return None
    store.prune(len(shards), keep=("manifest.parquet",))
    manifest = edit_manifest(store, len(shards), [item.edit_id for item in items])
    write_table(Path(set_dir) / "manifest.parquet", manifest)
    return manifest
