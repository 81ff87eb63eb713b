"""Masks: geometry helpers, and the whole detector -> SAM 2 path on tiny models from disk."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from varireal.io import read_table
from varireal.mask_set import build_masks
from varireal.masks import (
    MaskJob,
    MaskSettings,
    detect_boxes,
    detector_text,
    largest_filled_contour,
    to_original,
    to_square,
)
from varireal.models.load import load_detector, load_segmenter

SETTINGS = MaskSettings(work_size=256, box_threshold=0.0, text_threshold=0.0, batch_size=2)


def test_detector_text_is_lower_case_single_spaced_and_ends_with_a_period():
    assert detector_text("a {prefix} {class_name}", "", "Maine Coon") == "a maine coon."
    assert detector_text("a {prefix} {class_name}.", "pet", "Abyssinian") == "a pet abyssinian."


def test_square_padding_round_trips_to_the_original_size():
    image = Image.new("RGB", (300, 120), (10, 20, 30))
    square = to_square(image, 256)
    assert square.pixels.shape == (256, 256, 3)
    assert square.pixels[200:, :].sum() == 0  # padding below the content
    full = np.ones((256, 256), dtype=bool)
    mask = to_original(full, square)
    assert mask.size == (300, 120)
    assert np.asarray(mask).min() == 255  # padding never leaks into the mapped-back mask


def test_largest_filled_contour_drops_specks_and_fills_holes():
    mask = np.zeros((64, 64), dtype=bool)
    mask[10:40, 10:40] = True
    mask[20:25, 20:25] = False  # a hole
    mask[50:52, 50:52] = True  # a speck
    kept = largest_filled_contour(mask)
    assert kept[22, 22] and kept[10, 10] and kept[39, 39]
    assert not kept[51, 51]


@pytest.fixture(scope="module")
def mask_models(tiny_model_dirs):
    return load_detector(tiny_model_dirs["detector"], "cpu"), load_segmenter(tiny_model_dirs["segmenter"], "cpu")


@pytest.fixture()
def jobs(tmp_path, odd_images) -> list[MaskJob]:
    return [MaskJob(path.stem, path, "cat", "a cat.") for path in odd_images]


def test_every_readable_image_gets_a_binary_mask_of_its_own_size(tmp_path, jobs, mask_models):
    manifest = build_masks(jobs, tmp_path / "out", *mask_models, SETTINGS, models_key="k")
    assert list(manifest["id"]) == sorted(job.id for job in jobs)
    unreadable = manifest.query("status == 'unreadable'")
    assert set(unreadable["id"]) == {"truncated", "not_an_image"}
    assert all("truncated" in r or "not_an_image" in r for r in unreadable["reason"])
    for row in manifest.query("status != 'unreadable'").itertuples():
        mask = Image.open(tmp_path / "out" / row.mask_path)
        source = Image.open(next(job.image_path for job in jobs if job.id == row.id))
        assert mask.size == source.size and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        assert 0 < row.area_fraction <= 1
    assert read_table(tmp_path / "out" / "manifest.csv").shape == manifest.shape


def test_no_box_above_threshold_falls_back_and_says_so(tmp_path, jobs, mask_models):
    strict = replace(SETTINGS, box_threshold=1.0)
    manifest = build_masks(jobs, tmp_path / "out", *mask_models, strict, models_key="k")
    readable = manifest.query("status != 'unreadable'")
    assert set(readable["status"]) == {"fallback"}
    assert readable["score"].isna().all()
    assert all("no detector box" in reason for reason in readable["reason"])


def test_same_inputs_give_the_same_bytes(tmp_path, jobs, mask_models):
    first = build_masks(jobs, tmp_path / "a", *mask_models, SETTINGS, models_key="k")
    build_masks(jobs, tmp_path / "b", *mask_models, SETTINGS, models_key="k")
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes(), path
    assert len(first) == len(jobs)


def test_a_rerun_resumes_without_redoing_finished_masks(tmp_path, jobs, mask_models):
    out = tmp_path / "out"
    # An interrupted run: only the first two batches finished.
    build_masks(sorted(jobs, key=lambda j: j.id)[:4], out, *mask_models, SETTINGS, models_key="k")
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    (out / "masks" / ".tmp-leftover.png").write_bytes(b"half")  # what a kill mid-write leaves
    build_masks(jobs, out, *mask_models, SETTINGS, models_key="k")
    assert {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json") if p.name in finished} == finished
    build_masks(jobs, tmp_path / "fresh", *mask_models, SETTINGS, models_key="k")
    for path in sorted((tmp_path / "fresh" / "masks").glob("*.png")):
        assert path.read_bytes() == (out / "masks" / path.name).read_bytes()
    assert (out / "manifest.csv").read_bytes() == (tmp_path / "fresh" / "manifest.csv").read_bytes()


def test_changed_settings_redo_the_masks(tmp_path, jobs, mask_models):
    out = tmp_path / "out"
    build_masks(jobs, out, *mask_models, SETTINGS, models_key="k")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    build_masks(jobs, out, *mask_models, SETTINGS, models_key="other-weights")
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert all(after[name] != before[name] for name in before)


def test_changed_mask_code_redoes_the_masks(tmp_path, jobs, mask_models, monkeypatch):
    out = tmp_path / "out"
    build_masks(jobs, out, *mask_models, SETTINGS, models_key="k")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    monkeypatch.setattr("varireal.mask_set.mask_code", lambda: "the masks stage's code after a fix")
    build_masks(jobs, out, *mask_models, SETTINGS, models_key="k")
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert all(after[name] != before[name] for name in before)


def test_images_dropped_from_the_dataset_are_pruned(tmp_path, jobs, mask_models):
    out = tmp_path / "out"
    build_masks(jobs, out, *mask_models, SETTINGS, models_key="k")
    kept = [job for job in jobs if job.id != "rgba"]
    manifest = build_masks(kept, out, *mask_models, SETTINGS, models_key="k")
    assert "rgba" not in set(manifest["id"])
    assert not (out / "masks" / "rgba.png").exists()
    assert not (out / "records" / "rgba.json").exists()


def test_odd_images_fixture_covers_the_robustness_list(odd_images: list[Path]):
    assert {p.stem for p in odd_images} >= {
        "rgb",
        "gray",
        "rgba",
        "cmyk",
        "palette",
        "tiny",
        "truncated",
        "not_an_image",
    }


class _Inputs(dict):
    def to(self, device):
        return self


class _TwoBoxes:
    """A detector whose post-processing finds a weaker box first in query order, then a stronger one."""

    device = "cpu"

    def __call__(self, images=None, text=None, return_tensors=None, padding=None, **outputs):
        return _Inputs(input_ids=torch.zeros(1, 3, dtype=torch.long)) if images is not None else None

    def post_process_grounded_object_detection(self, outputs, input_ids, **kwargs):
        return [
            {"scores": torch.tensor([0.5, 0.9]), "boxes": torch.tensor([[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 30.0, 30.0]])}
        ]


def test_the_box_is_the_first_in_query_order_or_the_best_scoring_one():
    square = to_square(Image.new("RGB", (32, 32)), 32)
    detector = (_TwoBoxes(), _TwoBoxes())
    first = MaskSettings(work_size=32, box_threshold=0.4, text_threshold=0.3, batch_size=1, box="first")
    [(box, score)] = detect_boxes(detector, [square], ["a cat."], first)
    assert score == 0.5 and box.tolist() == [0.0, 0.0, 8.0, 8.0]  # the reference's choice, not the stronger box
    [(box, score)] = detect_boxes(detector, [square], ["a cat."], MaskSettings(32, 0.4, 0.3, 1, "top_score"))
    assert score == pytest.approx(0.9) and box.tolist() == [4.0, 4.0, 30.0, 30.0]
