"""Edit methods on tiny real pipelines: what must not change does not, and unreadable inputs are skipped.

Also the shared fixtures of test_edit_set.py (tiny pipelines built once per module)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import XKCD_COLORS, to_rgb
from PIL import Image

from varireal.attributes.background import BackgroundSettings, Dilation
from varireal.attributes.color import ColorSettings
from varireal.attributes.item import EditItem, Source
from varireal.attributes.pipelines import Editors
from varireal.attributes.registry import attribute_method
from varireal.attributes.step_settings import AlphaRange, Canny, InpaintStep, RegenerateStep, Text2ImageStep
from varireal.attributes.texture import TextureSettings
from varireal.edit.by_hand import edit_image
from varireal.edit.edit_set import run_edits
from varireal.images import read_image_rgb
from varireal.io import read_table
from varireal.models import diffusion
from varireal.seeding import item_seed
from varireal.shards import read_member

WORK = 64
STEP = {"prompt": "a photo of a {value} {class_name}", "negative_prompt": "blurry", "steps": 2, "guidance": 2.0}
REGEN = RegenerateStep(
    **STEP,
    controlnet_scale=0.8,
    ip_adapter_scale=0.6,
    ip_adapter_fill=127,
    canny=Canny(source="image", low=50, high=150),
)
SETTINGS = {  # our side of every switch (the reference's side: tests/test_edit_settings.py)
    "background": BackgroundSettings(
        prompt_weighting="none",
        scene=Text2ImageStep(**{**STEP, "prompt": "{value}, empty, no {class_name}"}, size=64),
        dilation=Dilation(kernel="ellipse", size=5),
        blur_px=2,
        harmonize=InpaintStep(**STEP, strength=0.5),
    ),
    "color": ColorSettings(
        prompt_weighting="none",
        alpha=AlphaRange(low=0.3, high=0.6),
        refine=InpaintStep(**STEP, strength=0.5),
        regenerate=REGEN,
    ),
    "texture": TextureSettings(
        prompt_weighting="none",
        swatch=Text2ImageStep(**{**STEP, "prompt": "{value} texture"}, size=64),
        crop_fraction=0.5,
        crop_position="center",
        sharpen=False,
        alpha=AlphaRange(low=0.5, high=0.8),
        refine=InpaintStep(**STEP, strength=0.5),
        regenerate=REGEN,
    ),
}
MODELS = {"inpaint": {"class_name": "StableDiffusionXLInpaintPipeline", "fingerprint": "f0"}}


_BUILT: list[Editors] = []  # one build per session: test_edit_set.py imports this fixture too


@pytest.fixture(scope="module")
def editors(tmp_path_factory) -> Editors:
    if _BUILT:
        return _BUILT[0]
    root = tmp_path_factory.mktemp("diffusion")
    for role in ("text2image", "inpaint", "regen_base", "controlnet", "regen_vae", "ip_adapter"):
        getattr(diffusion, f"build_tiny_{role}")(root / role, seed=0)
    loaded = Editors(
        diffusion.load_text2image(root / "text2image", "cpu"),
        diffusion.load_inpaint(root / "inpaint", "cpu"),
        diffusion.load_regenerator(
            root / "regen_base", root / "controlnet", root / "regen_vae", root / "ip_adapter", "cpu"
        ),
    )
    for pipe in (loaded.text2image, loaded.inpaint, loaded.regenerator):
        pipe.set_progress_bar_config(disable=True)
    _BUILT.append(loaded)
    return loaded


def _write_source(folder: Path, name: str, size: tuple[int, int], seed: int) -> Source:
    """A noisy photo (non-square, so padding and resizing matter) with a rectangular object mask."""
    width, height = size
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 255
    Image.fromarray(mask, mode="L").save(folder / f"{name}_mask.png")
    return Source(name, folder / f"{name}.png", "cat", 0, folder / f"{name}_mask.png")


def _items(sources: list[Source], attribute: str, slots: int = 1, value: str = "red") -> list[EditItem]:
    return [
        EditItem(
            f"{s.id}_s{slot}c0",
            s,
            attribute,
            "feasible",
            value,
            f"a bright {value}",
            slot,
            0,
            item_seed(0, s.id, attribute, "feasible", slot, 0),
        )
        for s in sources
        for slot in range(slots)
    ]


def _run(items, out: Path, editors, attribute: str, batch_size: int = 2, shard_images: int = 2):
    return run_edits(
        attribute_method(attribute),
        items,
        out,
        editors,
        SETTINGS[attribute],
        work_size=WORK,
        batch_size=batch_size,
        shard_images=shard_images,
        models=MODELS,
        show_progress=False,
    )


def _edited_image(set_dir: Path, row) -> Image.Image:
    """An edit's image, read from its shard at the manifest's byte range."""
    return read_image_rgb(row["shard"], data=read_member(set_dir / row["shard"], int(row["offset"]), int(row["size"])))


@pytest.mark.parametrize("attribute", ["background", "color", "texture"])
def test_edit_keeps_the_protected_part_exactly_and_skips_unreadable_inputs(tmp_path, editors, attribute):
    good = _write_source(tmp_path, "good", (70, 40), seed=1)
    broken = _write_source(tmp_path, "broken", (30, 30), seed=2)
    (tmp_path / "broken.png").write_bytes(b"not a PNG")
    no_mask = Source("nomask", good.path, "cat", 0, None, "mask stage: unreadable (truncated)")
    bad_mask = Source("badmask", good.path, "cat", 0, tmp_path / "missing_mask.png")
    manifest = _run(_items([good, broken, no_mask, bad_mask], attribute), tmp_path / "out", editors, attribute)

    rows = manifest.set_index("edit_id")
    assert rows.loc["good_s0c0", "status"] == "edited"
    assert "broken.png: cannot decode image" in rows.loc["broken_s0c0", "reason"]
    assert "mask stage: unreadable" in rows.loc["nomask_s0c0", "reason"]
    assert "missing_mask.png: cannot decode mask" in rows.loc["badmask_s0c0", "reason"]
    assert set(rows.loc[["broken_s0c0", "nomask_s0c0", "badmask_s0c0"], "status"]) == {"skipped"}
    # shards of two sources, sorted by source id: [badmask, broken], [good, nomask]; a skipped edit has a record, no image
    with tarfile.open(tmp_path / "out" / "shards" / "edits-00000.tar") as tar:
        assert tar.getnames() == ["badmask_s0c0.json", "broken_s0c0.json"]
    with tarfile.open(tmp_path / "out" / "shards" / "edits-00001.tar") as tar:
        assert tar.getnames() == ["good_s0c0.png", "good_s0c0.json", "nomask_s0c0.json"]
    assert (rows.loc["broken_s0c0", "offset"], rows.loc["broken_s0c0", "size"]) == (-1, 0)

    edited = np.asarray(_edited_image(tmp_path / "out", rows.loc["good_s0c0"]))
    source = np.asarray(Image.open(good.path))
    inside = np.asarray(Image.open(good.mask_path)) > 127
    assert edited.shape == source.shape
    protected = inside if attribute == "background" else ~inside
    assert (edited[protected] == source[protected]).all()
    assert (edited[~protected] != source[~protected]).any()  # something was edited

    settings = json.loads(rows.loc["good_s0c0", "settings"])
    assert settings["work_size"] == WORK and settings["prompts"]
    if attribute == "color":
        assert settings["tint_rgb"] == [255, 0, 0] and 0.3 <= settings["alpha"] <= 0.6
    assert json.loads(rows.loc["good_s0c0", "models"])["inpaint"]["fingerprint"] == "f0"
    assert read_table(tmp_path / "out" / "manifest.parquet").shape == manifest.shape


def test_edit_image_by_hand_keeps_the_background_and_the_size(tmp_path, editors):
    source = _write_source(tmp_path, "x", (50, 34), seed=5)
    image, mask = Image.open(source.path).convert("RGB"), Image.open(source.mask_path)
    edited = edit_image(image, mask, "color", "neon pink", editors, SETTINGS["color"], work_size=WORK, seed=0)
    outside = np.asarray(mask) <= 127
    assert edited.image.size == image.size
    assert (np.asarray(edited.image)[outside] == np.asarray(image)[outside]).all()
    # no table names it and CSS4 has no "neon pink": the XKCD survey's name, never a part of it ("pink") or a hash
    assert edited.details["tint_rule"] == "xkcd"
    assert edited.details["tint_rgb"] == [round(255 * c) for c in to_rgb(XKCD_COLORS["xkcd:neon pink"])]


def test_each_item_of_a_batch_gets_its_own_ip_adapter_reference(editors):
    """diffusers alone would repeat the stacked references for every prompt (huggingface/diffusers#9813)."""
    import torch

    from varireal.attributes.steps import ip_adapter_embeds, per_item_ip_adapter

    pipe = editors.regenerator
    rng = np.random.default_rng(0)
    references = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]

    def latents(indices: list[int]) -> torch.Tensor:
        embeds = ip_adapter_embeds(pipe, [references[i] for i in indices], guidance=2.0)
        with per_item_ip_adapter(pipe, embeds):
            return pipe(
                prompt=["a cat"] * len(indices),
                image=[references[i] for i in indices],
                ip_adapter_image_embeds=embeds,
                height=64,
                width=64,
                num_inference_steps=2,
                guidance_scale=2.0,
                output_type="latent",
                generator=[torch.Generator().manual_seed(i) for i in indices],
            ).images

    pipe.set_ip_adapter_scale(1.0)
    together = latents([0, 1])
    assert torch.allclose(together[0], latents([0])[0], atol=1e-4)
    assert torch.allclose(together[1], latents([1])[0], atol=1e-4)
    assert "prepare_ip_adapter_image_embeds" not in vars(pipe)  # the pipeline's own method is back
