"""The batched driver: plan -> shards -> (resume) -> edit in batches -> shard files -> manifest.parquet.

Batches are fixed slices of each shard's sorted items, so a resumed run groups items exactly as
an uninterrupted one; a shard whose items are all finished makes no pipeline call. An image or
mask that cannot be read gives a `skipped` row with the reason, and the run goes on. With a judge
(early stop, varireal.edit.rounds) a shard is edited in rounds of one candidate per open slot, and
the candidates it never needs get `not_needed` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from varireal.attributes.item import EditItem
from varireal.attributes.kind import AttributeMethod
from varireal.attributes.pipelines import Editors
from varireal.edit.make import base_record, edit_one_batch, models_json, settings_json
from varireal.edit.rounds import CandidateJudge, edit_in_rounds
from varireal.edit.store import edit_manifest, shard_plan
from varireal.images import png_bytes
from varireal.io import write_table
from varireal.keys import FileHashes, edit_code, item_key
from varireal.launch import SINGLE, Ranks
from varireal.shards import Sample, ShardStore


def item_keys(items: Sequence[EditItem], settings: Any, work_size: int, models_text: str) -> dict[str, str]:
    """Per item: the sha256 of everything its pixels depend on, its attribute's code included."""
    hashes = FileHashes()
    code = {attribute: edit_code(attribute) for attribute in sorted({item.attribute for item in items})}
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
                "code": code[item.attribute],
            }
        )
        for item in items
    }


def edit_shard(
    method: AttributeMethod,
    editors: Editors,
    shard: Sequence[EditItem],
    keys: Mapping[str, str],
    done: Mapping[str, Sample],
    settings: Any,
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
            for record, image in edit_one_batch(method, editors, batch, settings, work_size, models_text)
        ]

    if judge is not None:
        samples, left_out = edit_in_rounds(shard, usable, generate, judge, batch_size)
        for item in shard:
            if item.edit_id in left_out:
                record = base_record(method, item, settings, work_size, models_text)
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
    method: AttributeMethod,
    items: Sequence[EditItem],
    set_dir: Path,
    editors: Editors,
    settings: Any,
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
    if {item.attribute for item in items} - {method.name} or len({item.feasibility for item in items}) > 1:
        raise ValueError(f"one edit set holds one attribute ({method.name}) and one feasibility; got a mixed plan")
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
                    index,
                    edit_shard(method, editors, shard, keys, done, settings, work_size, batch_size, models_text, judge),
                )
            bar.update(len(shard))
    if not ranks.join():
        return None
    store.prune(len(shards), keep=("manifest.parquet",))
    manifest = edit_manifest(store, len(shards), [item.edit_id for item in items])
    write_table(Path(set_dir) / "manifest.parquet", manifest)
    return manifest
