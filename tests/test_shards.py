"""Tar shards (varireal.shards): what goes in comes out, byte for byte, readable by any tar reader."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from varireal.images import png_bytes, read_image_rgb
from varireal.shards import Sample, encode_record, read_member, read_samples, write_shard


def _samples() -> list[Sample]:
    """Three images of different sizes (so offsets are not all alike) and a record without an image."""
    rng = np.random.default_rng(0)
    images = [png_bytes(Image.fromarray(rng.integers(0, 256, (8 + 9 * i, 12, 3), dtype=np.uint8))) for i in range(3)]
    samples = [
        Sample(f"cat_{i}_s0c0", data, {"edit_id": f"cat_{i}_s0c0", "status": "edited", "score": 0.75, "value": "née"})
        for i, data in enumerate(images)
    ]
    return samples + [Sample("cat_9_s0c0", None, {"edit_id": "cat_9_s0c0", "status": "skipped", "reason": "no mask"})]


def test_round_trip_gives_back_the_same_bytes_and_records_in_order(tmp_path):
    samples = _samples()
    write_shard(tmp_path / "a.tar", samples)
    assert list(read_samples(tmp_path / "a.tar")) == samples


def test_the_same_samples_give_a_byte_identical_shard(tmp_path):
    write_shard(tmp_path / "a.tar", _samples())
    write_shard(tmp_path / "b.tar", _samples())
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:  # nothing of this machine or moment in the headers
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar} == {(0, 0, 0, "", "", 0o644)}
    changed = _samples()
    changed[1] = Sample(changed[1].key, changed[1].image, {**changed[1].record, "score": 0.5})
    write_shard(tmp_path / "c.tar", changed)
    assert (tmp_path / "c.tar").read_bytes() != (tmp_path / "a.tar").read_bytes()


def test_read_member_at_the_returned_offsets_gives_exactly_the_image(tmp_path):
    samples = _samples()
    located = write_shard(tmp_path / "a.tar", samples)
    assert [entry.key for entry in located] == [sample.key for sample in samples]
    for sample, entry in zip(samples, located):
        if sample.image is None:
            assert (entry.offset, entry.size) == (-1, 0)
            continue
        assert entry.size == len(sample.image)
        assert read_member(tmp_path / "a.tar", entry.offset, entry.size) == sample.image
        decoded = read_image_rgb("x.png", data=read_member(tmp_path / "a.tar", entry.offset, entry.size))
        assert decoded.size == Image.open(io.BytesIO(sample.image)).size
    with tarfile.open(tmp_path / "a.tar") as tar:  # where tar itself says each member's data lies
        offsets = {m.name: (m.offset_data, m.size) for m in tar}
    assert all(offsets[f"{e.key}.png"] == (e.offset, e.size) for e in located if e.offset >= 0)


def test_a_shard_is_a_plain_tar_of_png_and_json_members_in_sample_order(tmp_path):
    samples = _samples()
    write_shard(tmp_path / "a.tar", samples)
    with tarfile.open(tmp_path / "a.tar") as tar:  # what `tar -tf` lists
        assert tar.getnames() == [
            "cat_0_s0c0.png",
            "cat_0_s0c0.json",
            "cat_1_s0c0.png",
            "cat_1_s0c0.json",
            "cat_2_s0c0.png",
            "cat_2_s0c0.json",
            "cat_9_s0c0.json",
        ]
        assert all(m.isfile() and m.name.count(".") == 1 for m in tar)  # webdataset: key = name up to the first dot
        assert tar.extractfile("cat_1_s0c0.png").read() == samples[1].image
        assert tar.extractfile("cat_9_s0c0.json").read() == encode_record(samples[3].record)
    with open(tmp_path / "a.tar", "rb") as handle:
        assert handle.read(263)[257:262] == b"ustar"  # a POSIX header, readable by any tar


@pytest.mark.parametrize("key", ["cat.1", "train/cat_1", "", "-cat"])
def test_a_key_a_tar_reader_would_split_differently_is_refused_naming_it(tmp_path, key):
    with pytest.raises(ValueError, match=re.escape(f"key {key!r}")):
        write_shard(tmp_path / "a.tar", [Sample(key, b"x", {})])
    assert not list(tmp_path.iterdir())


def test_a_shard_truncated_inside_a_member_raises_naming_the_file(tmp_path):
    write_shard(tmp_path / "a.tar", _samples())
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "a.tar").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'a.tar'}: not a readable shard")):
        list(read_samples(tmp_path / "a.tar"))
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.tar: not a readable shard"):
        list(read_samples(tmp_path / "empty.tar"))
    with pytest.raises(ValueError, match="a.tar: expected .* bytes at offset"):
        read_member(tmp_path / "a.tar", len(data) // 3 - 10, 100)


def test_a_shard_cut_between_two_members_raises_naming_the_file(tmp_path):
    located = write_shard(tmp_path / "a.tar", _samples())
    data = (tmp_path / "a.tar").read_bytes()
    cut = located[1].offset - 512  # the header of the second image: the first sample's png and json are whole
    (tmp_path / "a.tar").write_bytes(data[:cut])
    with pytest.raises(ValueError, match="a.tar: not a readable shard"):
        list(read_samples(tmp_path / "a.tar"))


def test_a_write_that_fails_midway_leaves_no_file_and_keeps_the_old_shard(tmp_path):
    def killed():
        yield from _samples()[:2]
        raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / "a.tar", killed())
    assert not list(tmp_path.iterdir())  # neither the shard nor a temporary file
    write_shard(tmp_path / "a.tar", _samples())
    before = (tmp_path / "a.tar").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / "a.tar", killed())
    assert (tmp_path / "a.tar").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar"]


def test_a_bad_key_after_good_samples_leaves_no_file(tmp_path: Path):
    with pytest.raises(ValueError, match="'bad.key'"):
        write_shard(tmp_path / "a.tar", [*_samples()[:2], Sample("bad.key", b"x", {})])
    assert not list(tmp_path.iterdir())
