"""Tiny Grounding DINO: built deterministically, saved in transformers' format, loaded back, detecting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from varireal.models.errors import ModelDirError
from varireal.models.load import load_detector
from varireal.models.lock import file_hashes
from varireal.models.tiny import build_detector


@pytest.fixture(scope="module")
def built_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("detector") / "seed0"
    return out, build_detector(out, seed=0)


@pytest.fixture(scope="module")
def built(built_model):
    return built_model[0]


@pytest.fixture(scope="module")
def detector(built):
    return load_detector(built, "cpu")


def test_same_seed_gives_identical_bytes_and_another_seed_other_weights(built, tmp_path):
    build_detector(tmp_path / "again", seed=0)
    assert file_hashes(tmp_path / "again") == file_hashes(built)
    build_detector(tmp_path / "other", seed=1)
    other = file_hashes(tmp_path / "other")
    assert other["model.safetensors"] != file_hashes(built)["model.safetensors"]
    assert other["tokenizer.json"] == file_hashes(built)["tokenizer.json"]


def test_reloaded_weights_equal_the_saved_ones(built_model, detector):
    from transformers import AutoModelForZeroShotObjectDetection

    built, original = built_model
    processor, model = detector
    assert type(model).__name__ == "GroundingDinoForObjectDetection"
    assert type(processor).__name__ == "GroundingDinoProcessor"
    before, after = original.state_dict(), model.state_dict()
    assert sorted(before) == sorted(after)
    assert all(torch.equal(before[key], after[key]) for key in before)
    _, info = AutoModelForZeroShotObjectDetection.from_pretrained(
        built, local_files_only=True, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert len(load_file(built / "model.safetensors")) > 0


def test_batch_of_two_detects_and_thresholds_filter(detector):
    processor, model = detector
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (96, 160, 3), dtype=np.uint8),
        Image.fromarray(rng.integers(0, 255, (200, 120, 3), dtype=np.uint8)),
    ]
    sizes = [(96, 160), (200, 120)]
    inputs = processor(
        images=images, text=["a cat.", "a photo of a pet abyssinian."], return_tensors="pt", padding=True
    )
    assert max(inputs["pixel_values"].shape[-2:]) <= 192  # the tiny processor works at <= 192 px
    with torch.inference_mode():
        outputs = model(**inputs)
    every = processor.post_process_grounded_object_detection(
        outputs, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=sizes
    )
    assert len(every) == 2
    for result, (height, width) in zip(every, sizes):
        assert len(result["boxes"]) >= 1 and result["boxes"].shape[1] == 4
        assert len(result["scores"]) == len(result["boxes"]) == len(result["text_labels"])
        # boxes are in the target size's pixels (DETR boxes may reach past the border)
        centre = (result["boxes"][:, :2] + result["boxes"][:, 2:]) / 2
        assert bool(((centre >= 0) & (centre <= torch.tensor([width, height]))).all())
    none = processor.post_process_grounded_object_detection(
        outputs, inputs["input_ids"], threshold=1.01, text_threshold=0.3, target_sizes=sizes
    )
    assert [len(r["boxes"]) for r in none] == [0, 0]


def test_unknown_words_are_spelled_not_unknown(detector):
    processor, _ = detector
    ids = processor.tokenizer("a boeing 737-800.")["input_ids"]
    assert processor.tokenizer.unk_token_id not in ids


def test_missing_or_incomplete_directory_is_named(built, tmp_path):
    with pytest.raises(ModelDirError, match="detector: model directory .*nowhere does not exist"):
        load_detector(tmp_path / "nowhere", "cpu")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (partial / name).write_bytes((built / name).read_bytes())
    with pytest.raises(ModelDirError) as info:
        load_detector(partial, "cpu")
    assert (
        str(partial) in str(info.value)
        and "model.safetensors" in str(info.value)
        and "image processor" in str(info.value)
    )
