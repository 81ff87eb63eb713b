"""The edit driver on tiny real pipelines: determinism, batch size, resume after a kill, pruning."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from test_edit_methods import _items, _run, _write_source, editors  # noqa: F401  (editors: a fixture)
from varireal.edit.methods import Editors


def test_same_batch_size_gives_the_same_bytes_and_another_moves_pixels_by_at_most_one_level(tmp_path, editors):
    """Each item has its own generators, so its noise does not depend on its batch. The pixels still may:
    CPU kernels sum in a batch-size-dependent order (~1e-6 in the latents), which can flip a rounding."""
    sources = [_write_source(tmp_path, name, (48, 64), seed=i) for i, name in enumerate(("a", "b"))]
    items = _items(sources, "color")
    for run_dir, batch_size in (("first", 2), ("again", 2), ("single", 1)):
        _run(items, tmp_path / run_dir, editors, "color", batch_size=batch_size)
    for item in items:
        name = f"images/{item.edit_id}.png"
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
        batched, single = (np.asarray(Image.open(tmp_path / d / name)).astype(int) for d in ("first", "single"))
        assert np.abs(batched - single).max() <= 1 and (batched != single).mean() < 0.01
    a, b = (np.asarray(Image.open(tmp_path / "single" / f"images/{i.edit_id}.png")) for i in items)
    assert not np.array_equal(a, b)


class Counting:
    """A pipeline that counts its calls and can stop the run at a given call (a simulated kill)."""

    def __init__(self, pipe, calls: list[str], name: str, kill_at: int | None = None) -> None:
        self.pipe, self.calls, self.name, self.kill_at = pipe, calls, name, kill_at

    def __call__(self, **kwargs):
        if self.kill_at is not None and len(self.calls) >= self.kill_at:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append(self.name)
        return self.pipe(**kwargs)


def _counting(editors: Editors, calls: list[str], kill_at: int | None = None) -> Editors:
    return Editors(Counting(editors.text2image, calls, "text2image", kill_at), Counting(editors.inpaint, calls, "inpaint", kill_at))


def test_resume_after_a_kill_edits_only_unfinished_batches_and_prunes_unplanned_items(tmp_path, editors):
    source = _write_source(tmp_path, "a", (40, 40), seed=3)
    items = _items([source], "background", slots=2)  # batch_size 1: two batches of two pipeline calls
    out = tmp_path / "out"
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _run(items, out, _counting(editors, calls, kill_at=2), "background", batch_size=1)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a_s0c0.png"]  # no partial image
    assert not list(out.rglob(".tmp-*"))

    calls.clear()
    manifest = _run(items, out, _counting(editors, calls), "background", batch_size=1)
    assert calls == ["text2image", "inpaint"]
    assert list(manifest["status"]) == ["edited"] * 2
    uninterrupted = tmp_path / "whole"
    _run(items, uninterrupted, editors, "background", batch_size=1)
    for item in items:
        assert (out / f"images/{item.edit_id}.png").read_bytes() == (uninterrupted / f"images/{item.edit_id}.png").read_bytes()

    calls.clear()
    _run(items, out, _counting(editors, calls), "background", batch_size=1)
    assert calls == []
    changed = _items([source], "background", slots=1, value="blue")  # new value: redone; slot 1 unplanned: pruned
    manifest = _run(changed, out, _counting(editors, calls), "background", batch_size=1)
    assert calls == ["text2image", "inpaint"] and list(manifest["value"]) == ["blue"]
    assert [p.name for p in (out / "images").iterdir()] == ["a_s0c0.png"]
    assert [p.name for p in (out / "records").iterdir()] == ["a_s0c0.json"]
