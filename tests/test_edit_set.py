"""The edit driver: the shard layout, determinism, resume by shard after a kill, re-edits, pruning.

The first test runs the tiny real pipelines; the others run stand-in pipelines (pixels from each
item's own generator and prompt, calls counted), since they test the driver, not the models.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tarfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from test_edit_methods import _edited_image, _items, _run, _write_source, editors  # noqa: F401  (editors: a fixture)

from varireal.attributes.item import Source
from varireal.attributes.pipelines import Editors
from varireal.edit.store import MANIFEST_COLUMNS
from varireal.io import read_table
from varireal.shards import read_member, read_samples


def _shard_files(set_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((set_dir / "shards").iterdir())}


def _stats(set_dir: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) per shard: a rewrite, even with the same bytes, changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted((set_dir / "shards").iterdir())}


def _members(set_dir: Path) -> dict[str, list[str]]:
    result = {}
    for path in sorted((set_dir / "shards").iterdir()):
        with tarfile.open(path) as tar:
            result[path.name] = tar.getnames()
    return result


def test_same_batch_size_gives_the_same_bytes_and_another_moves_pixels_by_at_most_one_level(tmp_path, editors):
    """Each item has its own generators, so its noise does not depend on its batch. The pixels still may:
    CPU kernels sum in a batch-size-dependent order (~1e-6 in the latents), which can flip a rounding.
    (One shard holds both images: batches never span two shards.)"""
    sources = [_write_source(tmp_path, name, (48, 64), seed=i) for i, name in enumerate(("a", "b"))]
    items = _items(sources, "color")
    manifests = {
        run_dir: _run(items, tmp_path / run_dir, editors, "color", batch_size=batch_size, shard_images=2)
        for run_dir, batch_size in (("first", 2), ("again", 2), ("single", 1))
    }
    assert _shard_files(tmp_path / "first") == _shard_files(tmp_path / "again")  # every shard, byte for byte
    assert (tmp_path / "first/manifest.parquet").read_bytes() == (tmp_path / "again/manifest.parquet").read_bytes()
    first, single = (manifests[d].to_dict("records") for d in ("first", "single"))
    for batched, alone in zip(first, single):
        a = np.asarray(_edited_image(tmp_path / "first", batched)).astype(int)
        b = np.asarray(_edited_image(tmp_path / "single", alone)).astype(int)
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01
    a, b = (np.asarray(_edited_image(tmp_path / "single", row)) for row in single)
    assert not np.array_equal(a, b)


# --- stand-in pipelines ------------------------------------------------------------------------------


class StandIn:
    """A text-to-image or inpainting pipeline in call signature only: each item's pixels come from its own
    generator, its prompt and `tint`; calls are counted; `kill_at` raises at that call (a killed run)."""

    def __init__(self, name: str, calls: list[str], tint: int, kill_at: int | None) -> None:
        self.name, self.calls, self.tint, self.kill_at = name, calls, tint, kill_at

    def __call__(self, *, prompt, generator, height, width, output_type="pil", **_):
        if self.kill_at is not None and len(self.calls) >= self.kill_at:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append(self.name)
        images = []
        for text, gen in zip(prompt, generator):
            noise = torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8).numpy()
            images.append(noise + np.uint8((zlib.crc32(text.encode()) + self.tint) % 256))
        # as diffusers: floats in [0, 1] for output_type="np" (the SDXL steps), else PIL images
        if output_type == "np":
            return SimpleNamespace(images=np.stack(images).astype(np.float32) / 255)
        return SimpleNamespace(images=[Image.fromarray(image) for image in images])


def stand_in(calls: list[str], tint: int = 0, kill_at: int | None = None) -> Editors:
    return Editors(StandIn("text2image", calls, tint, kill_at), StandIn("inpaint", calls, tint, kill_at))


@pytest.fixture()
def sources(tmp_path) -> list[Source]:
    folder = tmp_path / "real"
    folder.mkdir()
    return [_write_source(folder, name, (40, 32), seed=i) for i, name in enumerate(("a", "b", "c"))]


def _edit(items, out: Path, editors: Editors, batch_size: int = 1, shard_images: int = 1):
    return _run(items, out, editors, "background", batch_size=batch_size, shard_images=shard_images)


# 3 sources x 2 slots, one source per shard, batch size 1: each shard is 2 batches = 4 pipeline calls.


def test_each_shard_holds_its_sources_edits_whatever_the_batch_size(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    layouts = []
    for batch_size, batches in ((1, 4 + 2), (4, 1 + 1)):  # batches never span two shards
        calls: list[str] = []
        manifest = _edit(items, tmp_path / f"b{batch_size}", stand_in(calls), batch_size=batch_size, shard_images=2)
        assert len(calls) == 2 * batches
        layouts.append((_members(tmp_path / f"b{batch_size}"), manifest[["edit_id", "shard"]]))
        assert list(manifest.columns) == MANIFEST_COLUMNS and list(manifest["status"]) == ["edited"] * 6
    (members, shards), (members_4, shards_4) = layouts
    assert (
        members
        == members_4
        == {
            "edits-00000.tar": [
                f"{e}.{ext}" for e in ("a_s0c0", "a_s1c0", "b_s0c0", "b_s1c0") for ext in ("png", "json")
            ],
            "edits-00001.tar": [f"{e}.{ext}" for e in ("c_s0c0", "c_s1c0") for ext in ("png", "json")],
        }
    )
    assert shards.equals(shards_4)
    assert sorted(p.name for p in (tmp_path / "b1").iterdir()) == ["manifest.parquet", "shards"]


def test_the_manifest_points_at_each_image_and_the_json_is_the_full_record(tmp_path, sources):
    manifest = _edit(_items(sources, "background", slots=2), tmp_path / "out", stand_in([]))
    samples = {s.key: s for path in sorted((tmp_path / "out/shards").iterdir()) for s in read_samples(path)}
    for row in manifest.to_dict("records"):
        sample = samples[row["edit_id"]]
        assert read_member(tmp_path / "out" / row["shard"], row["offset"], row["size"]) == sample.image
        record = {k: v for k, v in sample.record.items() if k != "key"}
        assert record == {k: v for k, v in row.items() if k not in ("shard", "offset", "size")}
        assert len(sample.record["key"]) == 64  # the sha256 of everything its pixels depend on
    assert read_table(tmp_path / "out/manifest.parquet").equals(manifest)


def test_a_killed_run_resumes_by_shard_and_ends_as_an_uninterrupted_one(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    out, calls = tmp_path / "out", []
    with pytest.raises(KeyboardInterrupt):
        _edit(items, out, stand_in(calls, kill_at=6))  # shard 0 done, shard 1 killed in its second batch
    assert [p.name for p in (out / "shards").iterdir()] == ["edits-00000.tar"]  # no partial shard, no temp file
    assert not (out / "manifest.parquet").exists()
    finished = _stats(out)

    calls.clear()
    _edit(items, out, stand_in(calls))
    assert len(calls) == 2 * 4  # shards 1 and 2, whole: a shard is the unit of resume
    assert _stats(out)["edits-00000.tar"] == finished["edits-00000.tar"]  # the finished shard is not touched
    _edit(items, tmp_path / "whole", stand_in([]))
    assert _shard_files(out) == _shard_files(tmp_path / "whole")
    assert (out / "manifest.parquet").read_bytes() == (tmp_path / "whole/manifest.parquet").read_bytes()

    calls.clear()
    before = _stats(out)
    _edit(items, out, stand_in(calls))
    assert calls == [] and _stats(out) == before  # all done: nothing edited, nothing rewritten


def test_a_deleted_shard_is_redone_alone(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    out = tmp_path / "out"
    _edit(items, out, stand_in([]))
    files, before, manifest = _shard_files(out), _stats(out), (out / "manifest.parquet").read_bytes()
    (out / "shards/edits-00001.tar").unlink()
    calls: list[str] = []
    _edit(items, out, stand_in(calls))
    assert len(calls) == 4
    after = _stats(out)
    assert (
        after["edits-00000.tar"] == before["edits-00000.tar"] and after["edits-00002.tar"] == before["edits-00002.tar"]
    )
    assert _shard_files(out) == files and (out / "manifest.parquet").read_bytes() == manifest


def test_a_damaged_shard_is_redone_and_ends_with_the_same_bytes(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    out = tmp_path / "out"
    _edit(items, out, stand_in([]))
    files = _shard_files(out)
    damaged = out / "shards/edits-00002.tar"
    damaged.write_bytes(files["edits-00002.tar"][:700])  # cut inside its first image
    calls: list[str] = []
    _edit(items, out, stand_in(calls))
    assert len(calls) == 4 and _shard_files(out) == files


def test_a_changed_item_is_re_edited_and_its_shard_mates_keep_their_bytes(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    out = tmp_path / "out"
    _edit(items, out, stand_in([]))
    old = {s.key: s for s in read_samples(out / "shards/edits-00001.tar")}
    before = _stats(out)
    changed = [dataclasses.replace(item, value="blue") if item.edit_id == "b_s1c0" else item for item in items]
    calls: list[str] = []
    manifest = _edit(changed, out, stand_in(calls, tint=128))  # what this run edits comes out visibly different
    assert calls == ["text2image", "inpaint"]  # one batch: b_s1c0 alone
    new = {s.key: s for s in read_samples(out / "shards/edits-00001.tar")}
    assert new["b_s0c0"] == old["b_s0c0"]  # the same bytes: kept, not edited again
    assert new["b_s1c0"].image != old["b_s1c0"].image and new["b_s1c0"].record["value"] == "blue"
    assert new["b_s1c0"].record["key"] != old["b_s1c0"].record["key"]
    after = _stats(out)
    assert after.pop("edits-00001.tar") != before.pop("edits-00001.tar")
    assert after == before  # the other shards are not touched
    assert manifest.set_index("edit_id").loc["b_s1c0", "value"] == "blue"


def test_a_changed_input_image_re_edits_the_items_of_that_image(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    out = tmp_path / "out"
    _edit(items, out, stand_in([]))
    Image.new("RGB", (40, 32), (9, 9, 9)).save(sources[2].path)  # same path, new pixels
    calls: list[str] = []
    _edit(items, out, stand_in(calls))
    assert len(calls) == 4  # both items of c, nothing else


def test_a_smaller_plan_prunes_extra_shards_and_the_old_layout(tmp_path, sources):
    items = _items(sources, "background", slots=2)
    out = tmp_path / "out"
    _edit(items, out, stand_in([]))
    for leftover in (
        "images/a_s0c0.png",
        "records/a_s0c0.json",
        "manifest.csv",
        "shards/.tmp-edits-00000.tar.x.tar",
        ".tmp-manifest.parquet.y.parquet",
        "shards/edits-00009.tar",
    ):
        (out / leftover).parent.mkdir(exist_ok=True)
        (out / leftover).write_bytes(b"from an older run")
    before = _stats(out)
    calls: list[str] = []
    manifest = _edit([i for i in items if i.source.id != "c"], out, stand_in(calls))
    assert calls == []
    assert sorted(p.name for p in out.iterdir()) == ["manifest.parquet", "shards"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["edits-00000.tar", "edits-00001.tar"]
    assert _stats(out) == {k: v for k, v in before.items() if k in ("edits-00000.tar", "edits-00001.tar")}
    assert sorted(manifest["edit_id"]) == ["a_s0c0", "a_s1c0", "b_s0c0", "b_s1c0"]
    assert sorted(read_table(out / "manifest.parquet")["shard"].unique()) == [
        "shards/edits-00000.tar",
        "shards/edits-00001.tar",
    ]


def test_unreadable_inputs_are_skipped_with_a_reason_a_record_and_no_image(tmp_path, sources):
    good = sources[0]
    broken = _write_source(tmp_path / "real", "broken", (30, 30), seed=2)
    broken.path.write_bytes(b"not a PNG")
    empty = _write_source(tmp_path / "real", "empty", (30, 30), seed=4)
    Image.new("L", (30, 30), 0).save(empty.mask_path)
    no_mask = Source("nomask", good.path, "cat", 0, None, "mask stage: unreadable (truncated)")
    bad_mask = Source("badmask", good.path, "cat", 0, tmp_path / "missing_mask.png")
    items = _items([good, broken, empty, no_mask, bad_mask], "background")
    out, calls = tmp_path / "out", []
    manifest = _edit(items, out, stand_in(calls), batch_size=8, shard_images=8)
    assert calls == ["text2image", "inpaint"]  # one batch: the readable item alone goes to the pipelines
    reasons = manifest.set_index("edit_id")["reason"]
    assert "broken.png: cannot decode image" in reasons["broken_s0c0"]
    assert "empty_mask.png: the mask has no object pixels" in reasons["empty_s0c0"]
    assert "mask stage: unreadable" in reasons["nomask_s0c0"]
    assert "missing_mask.png: cannot decode mask" in reasons["badmask_s0c0"]
    skipped = manifest[manifest["edit_id"] != "a_s0c0"]
    assert set(skipped["status"]) == {"skipped"} and set(skipped["offset"]) == {-1} and set(skipped["size"]) == {0}
    [shard] = (out / "shards").iterdir()
    samples = {s.key: s for s in read_samples(shard)}
    assert [k for k, s in samples.items() if s.image is not None] == ["a_s0c0"]
    assert (
        samples["broken_s0c0"].record["status"] == "skipped"
        and "cannot decode" in samples["broken_s0c0"].record["reason"]
    )

    calls.clear()
    _edit(items, out, stand_in(calls), batch_size=8, shard_images=8)
    assert calls == []  # a skipped item is finished too: not retried while its inputs stay the same
    Image.fromarray(np.full((30, 30, 3), 77, dtype=np.uint8)).save(broken.path)  # repaired
    manifest = _edit(items, out, stand_in(calls), batch_size=8, shard_images=8)
    assert manifest.set_index("edit_id").loc["broken_s0c0", "status"] == "edited"


def test_a_mixed_plan_is_refused(tmp_path, sources):
    items = _items(sources[:1], "background") + _items(sources[1:2], "color")
    with pytest.raises(ValueError, match="one attribute .* and one feasibility"):
        _edit(items, tmp_path / "out", stand_in([]))
    assert not os.path.exists(tmp_path / "out")


def test_an_empty_plan_writes_an_empty_manifest(tmp_path):
    manifest = _edit([], tmp_path / "out", stand_in([]))
    assert manifest.empty and list(manifest.columns) == MANIFEST_COLUMNS
    assert list(read_table(tmp_path / "out/manifest.parquet").columns) == MANIFEST_COLUMNS


def test_a_real_image_added_or_removed_moves_edits_between_shards_without_re_editing_them(tmp_path, sources):
    """One source per shard: adding 'a0' first moves every later edit one shard on; removing it moves them back."""
    out, calls = tmp_path / "out", []
    _edit(_items(sources, "background", slots=2), out, stand_in(calls))
    extra = _write_source(tmp_path / "real", "a0", (40, 32), seed=9)
    calls.clear()
    _edit(_items([extra, *sources], "background", slots=2), out, stand_in(calls))
    assert len(calls) == 2 * 2  # only a0's two items: a, b, c were carried into their new shards
    _edit(_items([extra, *sources], "background", slots=2), tmp_path / "whole", stand_in([]))
    assert _shard_files(out) == _shard_files(tmp_path / "whole")
    calls.clear()
    _edit(_items(sources, "background", slots=2), out, stand_in(calls))
    assert calls == []  # removed again: every edit is read from the shard after its new one
    _edit(_items(sources, "background", slots=2), tmp_path / "fresh", stand_in([]))
    assert _shard_files(out) == _shard_files(tmp_path / "fresh")


def test_torch_compile_is_recorded_and_redoes_eager_edits(tmp_path, sources):
    from test_edit_methods import MODELS, SETTINGS, WORK

    from varireal.attributes.pipelines import load_editors
    from varireal.attributes.registry import attribute_method
    from varireal.edit.edit_set import run_edits

    items = _items(sources, "background", slots=1)
    out = tmp_path / "out"
    eager = _edit(items, out, stand_in([]))
    assert "compiled" not in json.loads(eager["models"].iloc[0])
    calls: list[str] = []
    compiled = run_edits(
        attribute_method("background"),
        items,
        out,
        stand_in(calls),
        SETTINGS["background"],
        work_size=WORK,
        batch_size=1,
        shard_images=1,
        models=MODELS,
        show_progress=False,
        compiled=True,
    )
    assert len(calls) == 2 * len(items)  # compiled kernels may round otherwise: nothing eager is kept
    assert json.loads(compiled["models"].iloc[0])["compiled"] is True
    with pytest.raises(ValueError, match="edit offload=true needs a CUDA device; got device='cpu'"):
        load_editors(None, ("text2image", "inpaint"), "cpu", offload=True)
