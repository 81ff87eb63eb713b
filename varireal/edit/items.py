"""What to edit: real training images x slots x candidates, each with its value and seed.

Each real image gets `images_per_real` slots, each with a value of the attribute's feasible or
infeasible list for the image's class (color: per class; texture: per dataset, class or category,
as the prompts document holds it), drawn by a generator seeded from (base seed, image id,
attribute, feasibility), never Python's global `random`. The document's `value_draw` says how:
`positions` (the reference, base.py Sampler: distinct list positions, so a value listed twice may
come twice; a list shorter than the slots is used whole, then topped up with draws with
replacement) or `distinct_values` (distinct values; too few is an error). Each slot
has `candidates_per_slot` candidates that differ only in their seed
item_seed(base seed, image id, attribute, feasibility, slot, candidate), so a plan does not
depend on which other images are in the dataset or on the order they come in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from varireal.attributes.item import EditItem, Source
from varireal.attributes.registry import attribute_method
from varireal.io import read_table
from varireal.prompts.schema import AttributeValue, PromptsDocument, per_class
from varireal.safe_paths import check_manifest, check_real_manifest
from varireal.seeding import item_rng, item_seed
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES


def edit_id(source_id: str, slot: int, candidate: int) -> str:
    return f"{source_id}_s{slot}c{candidate}"


def read_sources(real_dir: Path, mask_dir: Path) -> list[Source]:
    """The train split of data/real/<dataset>, each joined with its row of data/masks/<dataset>."""
    real = read_table(real_dir / "manifest.csv")
    _require_columns(real, real_dir / "manifest.csv", ("id", "path", "class_name", "class_index", "split"))
    check_real_manifest(real, real_dir / "manifest.csv")  # ids name edits and shard members
    masks = read_table(mask_dir / "manifest.csv")
    _require_columns(masks, mask_dir / "manifest.csv", ("id", "mask_path", "status"))
    check_manifest(masks, mask_dir / "manifest.csv", ids=("id",), files=("mask_path",))
    by_id = {row.id: row for row in masks.itertuples()}
    sources = []
    for row in real[real["split"] == "train"].itertuples():
        mask_row = by_id.get(row.id)
        mask_path, problem = None, ""
        if mask_row is None:
            problem = f"{mask_dir / 'manifest.csv'}: no mask row for {row.id}"
        elif mask_row.status == "unreadable" or not isinstance(mask_row.mask_path, str):
            reason = getattr(mask_row, "reason", "")
            problem = f"mask stage: {mask_row.status}" + (f" ({reason})" if isinstance(reason, str) and reason else "")
        else:
            mask_path = mask_dir / mask_row.mask_path
        sources.append(
            Source(str(row.id), real_dir / row.path, str(row.class_name), int(row.class_index), mask_path, problem)
        )
    return sorted(sources, key=lambda source: source.id)


def _require_columns(table: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected at least {', '.join(columns)}")


def value_list(document: PromptsDocument, attribute: str, feasibility: str, class_name: str) -> list[AttributeValue]:
    """The values an edit of this image may take: the dataset's list, or its class's or category's."""
    if attribute not in ATTRIBUTES or feasibility not in FEASIBILITIES:
        raise ValueError(
            f"attribute={attribute!r}, feasibility={feasibility!r}: expected one of {ATTRIBUTES} and one of {FEASIBILITIES}"
        )
    if attribute not in document.lists:
        raise ValueError(
            f"prompts for {document.dataset}: no {attribute} lists (it has {', '.join(sorted(document.lists))}); "
            "rerun the prompts stage"
        )
    lists = document.lists[attribute]
    if per_class(lists):
        if class_name not in lists:
            raise ValueError(
                f"prompts for {document.dataset}: no {attribute} list for class {class_name!r} "
                f"(classes with lists: {', '.join(sorted(lists)) or 'none'}); rerun the prompts stage"
            )
        return _check_colors(document, attribute, list(getattr(lists[class_name], feasibility)), class_name)
    node = getattr(lists, feasibility)
    if isinstance(node, list):
        return _check_colors(document, attribute, list(node), class_name)
    group = class_name if class_name in node else document.categories.get(class_name, class_name)
    if group not in node:
        raise ValueError(
            f"prompts for {document.dataset}: the {attribute}/{feasibility} lists are per class or category and none is "
            f"for class {class_name!r} (lists: {', '.join(sorted(node))}); rerun the prompts stage"
        )
    return _check_colors(document, attribute, list(node[group]), class_name)


def _check_colors(
    document: PromptsDocument, attribute: str, values: list[AttributeValue], class_name: str
) -> list[AttributeValue]:
    """An attribute whose values are colours needs the RGB the prompts stage resolved for each."""
    if not attribute_method(attribute).colors:
        return values
    unresolved = [value.value for value in values if value.rgb is None]
    if unresolved:
        raise ValueError(
            f"prompts for {document.dataset}: {attribute} value(s) {unresolved!r} of class {class_name!r} have no rgb; "
            "the prompts document predates colour resolution: rerun the prompts stage"
        )
    return values


def draw_values(
    values: Sequence[AttributeValue], count: int, how: str, rng: np.random.Generator, where: str
) -> list[AttributeValue]:
    """`count` values for one real image (see the module docstring for `how`)."""
    if how == "positions":
        if len(values) >= count:
            return [values[int(i)] for i in rng.choice(len(values), count, replace=False)]
        return list(values) + [values[int(i)] for i in rng.choice(len(values), count - len(values), replace=True)]
    if how != "distinct_values":
        raise ValueError(f"value_draw={how!r}: expected positions or distinct_values")
    first: dict[str, AttributeValue] = {}
    for value in values:
        first.setdefault(" ".join(value.value.split()).casefold(), value)
    distinct = list(first.values())
    if len(distinct) < count:
        raise ValueError(
            f"{where} has {len(distinct)} distinct value(s), fewer than images_per_real={count} (value_draw: "
            "distinct_values gives each slot a different value); lower edit.images_per_real, write longer lists, "
            "or set prompts.value_draw: positions (the reference's draw)"
        )
    return [distinct[int(i)] for i in rng.choice(len(distinct), count, replace=False)]


def plan_edits(
    sources: Sequence[Source],
    document: PromptsDocument,
    attribute: str,
    feasibility: str,
    images_per_real: int,
    candidates_per_slot: int,
    seed: int,
    prefix: str = "",
) -> list[EditItem]:
    """Every candidate edit, sorted by edit id; values drawn as `document.value_draw` says."""
    items = []
    for source in sources:
        values = value_list(document, attribute, feasibility, source.class_name)
        where = f"prompts for {document.dataset}: the {attribute}/{feasibility} list for {source.class_name!r}"
        rng = item_rng(seed, source.id, attribute, feasibility, "values")
        for slot, value in enumerate(draw_values(values, images_per_real, document.value_draw, rng, where)):
            for candidate in range(candidates_per_slot):
                items.append(
                    EditItem(
                        edit_id=edit_id(source.id, slot, candidate),
                        source=source,
                        attribute=attribute,
                        feasibility=feasibility,
                        value=value.value,
                        description=value.description,
                        slot=slot,
                        candidate=candidate,
                        seed=item_seed(seed, source.id, attribute, feasibility, slot, candidate),
                        prefix=prefix,
                        rgb=value.rgb,
                        rgb_source=value.rgb_source or "",
                    )
                )
    return sorted(items, key=lambda item: item.edit_id)
