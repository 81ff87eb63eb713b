"""Edit a single image by hand (`varireal edit --image x.jpg --attr color --value "neon pink" --out x.png`).

The same methods and settings as the edit stage; the mask is given (--mask) or made with the
masks stage's detector + SAM 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from varireal.attributes import image_ops as ops
from varireal.attributes.item import EditItem, Source
from varireal.attributes.pipelines import Editors
from varireal.attributes.registry import attribute_method
from varireal.attributes.steps import Edited, Job
from varireal.images import read_image_rgb
from varireal.io import save_image
from varireal.seeding import item_seed


def edit_image(
    image: Image.Image,
    mask: Image.Image,
    attribute: str,
    value: str,
    editors: Editors,
    settings: Any,
    *,
    work_size: int,
    seed: int,
    class_name: str = "object",
    description: str = "",
    prefix: str = "",
    source_path: Path = Path("image"),
) -> Edited:
    """One edit of one image; same inputs and seed give the same pixels."""
    source = Source(source_path.stem, source_path, class_name, -1, source_path)
    item = EditItem(
        edit_id=f"{source.id}_s0c0",
        source=source,
        attribute=attribute,
        feasibility="by_hand",
        value=value,
        description=description or value,
        slot=0,
        candidate=0,
        seed=item_seed(seed, source.id, attribute, "by_hand", 0, 0),
        prefix=prefix,
    )
    square = ops.work_square(image, mask, work_size)
    if not square.object_mask.any():
        raise ValueError(f"{source_path}: the mask has no object pixels (nothing to keep or edit)")
    [edited] = attribute_method(attribute).edit(editors, [Job(item, square)], settings)
    return edited


def edit_file(
    image_path: Path,
    attribute: str,
    value: str,
    out: Path,
    params: Any,
    lock: Any,
    *,
    mask_path: Path | None = None,
    class_name: str = "object",
    description: str = "",
    feasibility: str = "feasible",
) -> Edited:
    """Read, mask (unless given), edit with the profile's settings for params.dataset and `feasibility`, write `out`."""
    from varireal.attributes.pipelines import load_editors
    from varireal.devices import resolve_device
    from varireal.masks import mask_one

    settings = params.edit.pick(params.profile)
    device = resolve_device(settings.device)
    image = read_image_rgb(image_path)
    if mask_path is not None:
        with Image.open(mask_path) as opened:
            mask = opened.convert("L")
    else:
        record, mask = mask_one(image_path, class_name, params, lock, device)
        if mask is None:
            raise ValueError(f"{image_path}: no mask ({record['reason']})")
    edited = edit_image(
        image,
        mask,
        attribute,
        value,
        load_editors(lock, attribute_method(attribute).editors, device),
        settings.method(params.dataset, attribute, feasibility),
        work_size=settings.work_size,
        seed=settings.seed,
        class_name=class_name,
        description=description,
        prefix=params.prefix,
        source_path=image_path,
    )
    save_image(out, edited.image)
    return edited
