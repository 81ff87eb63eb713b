"""One edit set on disk: data/edits/<attribute>/<feasibility>/{shards/edits-NNNNN.tar, manifest.parquet}.

The plan is cut into shards of `shard_images` real images (sorted by source id), each shard one
tar of `<edit_id>.png` + `<edit_id>.json` samples (varireal.shards.ShardStore) written atomically once all
its items are done: a killed run loses at most the shard it was working on. A record carries
its item's key, the sha256 of everything its pixels depend on (input files, value, seed,
settings, models); on resume a shard whose records all have their planned keys is not touched,
and a shard that must be rewritten keeps the bytes of every item whose key still matches.
The manifest has one row per candidate, with the shard and byte range of its image.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from varireal.attributes.item import EditItem
from varireal.shards import ShardStore

MANIFEST_COLUMNS = [
    "edit_id",
    "shard",
    "offset",
    "size",
    "status",
    "reason",
    "source_id",
    "source_path",
    "class_name",
    "class_index",
    "attribute",
    "feasibility",
    "value",
    "description",
    "prompt",
    "negative_prompt",
    "seed",
    "slot",
    "candidate",
    "mask_id",
    "rgb",
    "rgb_source",
    "settings",
    "models",
]


def shard_plan(items: Sequence[EditItem], shard_images: int) -> list[list[EditItem]]:
    """Items cut into shards of `shard_images` source images each, sources and items in sorted order.

    The layout depends on the plan and `shard_images` only (never on batch size or process count).
    """
    sources = sorted({item.source.id for item in items})
    index = {source: position // shard_images for position, source in enumerate(sources)}
    shards: list[list[EditItem]] = [[] for _ in range((len(sources) + shard_images - 1) // shard_images)]
    for item in sorted(items, key=lambda item: (item.source.id, item.edit_id)):
        shards[index[item.source.id]].append(item)
    return shards


def edit_manifest(store: ShardStore, count: int, planned: Sequence[str]) -> pd.DataFrame:
    """One row per planned candidate in edit-id order; fails naming the shard if one is missing."""
    table = store.located(count)
    if not planned:
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    missing = sorted(set(planned) - set(table["edit_id"] if len(table) else []))
    if missing:
        raise ValueError(
            f"{store.set_dir}: {len(missing)} planned edit(s) missing from the shards after the run "
            f"(e.g. {missing[0]}); rerun the stage"
        )
    table = table.set_index("edit_id", drop=False).loc[sorted(planned)].reset_index(drop=True)
    return table[MANIFEST_COLUMNS]
