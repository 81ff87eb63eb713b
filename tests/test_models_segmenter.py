"""Tiny SAM 2.1: built deterministically as a sam2 checkpoint, loaded by build_sam2, masking box prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from varireal.models.errors import ModelDirError
from varireal.models.load import load_segmenter, sam2_feature_sizes
from varireal.models.lock import file_hashes
from varireal.models.tiny import SAM2_JSON, SAM2_TINY_CHECKPOINT, build_segmenter


@pytest.fixture(scope="module")
def built_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("segmenter") / "seed0"
    return out, build_segmenter(out, seed=0)


@pytest.fixture(scope="module")
def built(built_model):
    return built_model[0]


@pytest.fixture(scope="module")
def predictor(built):
    return load_segmenter(built, "cpu")


def test_files_and_size(built_model):
    built, model = built_model
    assert sorted(p.name for p in built.iterdir()) == sorted([SAM2_JSON, SAM2_TINY_CHECKPOINT])
    info = json.loads((built / SAM2_JSON).read_text())
    assert info["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml" and info["image_size"] == 256
    assert "++model.image_size=256" in info["hydra_overrides"]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_same_seed_gives_identical_bytes_and_another_seed_other_weights(built, tmp_path):
    build_segmenter(tmp_path / "again", seed=0)
    assert file_hashes(tmp_path / "again") == file_hashes(built)
    build_segmenter(tmp_path / "other", seed=1)
    assert file_hashes(tmp_path / "other")[SAM2_TINY_CHECKPOINT] != file_hashes(built)[SAM2_TINY_CHECKPOINT]


def test_checkpoint_is_sam2_format_and_reloads_exactly(built_model, predictor):
    built, original = built_model
    checkpoint = torch.load(built / SAM2_TINY_CHECKPOINT, map_location="cpu", weights_only=True)
    assert list(checkpoint) == ["model"]
    loaded = predictor.model.state_dict()
    assert sorted(loaded) == sorted(checkpoint["model"]) == sorted(original.state_dict())
    assert all(torch.equal(loaded[key], value) for key, value in checkpoint["model"].items())
    assert type(predictor).__name__ == "SAM2ImagePredictor" and type(predictor.model).__name__ == "SAM2Base"
    assert predictor._bb_feat_sizes == [(64, 64), (32, 32), (16, 16)] == sam2_feature_sizes(256)
    assert sam2_feature_sizes(1024) == [(256, 256), (128, 128), (64, 64)]  # sam2's own default, for Hiera-L


def test_box_prompt_gives_a_mask_of_the_image_size_single_and_batched(predictor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (100, 150, 3), dtype=np.uint8), rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)]
    boxes = [np.array([10, 10, 80, 60], dtype=np.float32), np.array([0, 0, 255, 255], dtype=np.float32)]
    predictor.set_image_batch(images)
    masks, scores, low_res = predictor.predict_batch(box_batch=boxes, multimask_output=False)
    assert [m.shape for m in masks] == [(1, 100, 150), (1, 256, 256)]
    assert [s.shape for s in scores] == [(1,), (1,)]
    predictor.set_image(images[0])
    mask, score, _ = predictor.predict(box=boxes[0], multimask_output=False)
    assert mask.shape == (1, 100, 150) and score.shape == (1,)
    np.testing.assert_allclose(mask, masks[0], atol=1e-5)


def test_missing_incomplete_or_mismatched_directory_is_named(built, tmp_path):
    with pytest.raises(ModelDirError, match="segmenter: model directory .*nowhere does not exist"):
        load_segmenter(tmp_path / "nowhere", "cpu")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / SAM2_JSON).write_bytes((built / SAM2_JSON).read_bytes())
    with pytest.raises(ModelDirError, match=f"segmenter: .*partial is incomplete.*{SAM2_TINY_CHECKPOINT}"):
        load_segmenter(partial, "cpu")
    # the tiny checkpoint under the full-size Hiera-T config: keys and shapes do not fit
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / SAM2_TINY_CHECKPOINT).write_bytes((built / SAM2_TINY_CHECKPOINT).read_bytes())
    info = json.loads((built / SAM2_JSON).read_text())
    (wrong / SAM2_JSON).write_text(json.dumps({**info, "hydra_overrides": [], "image_size": 1024}))
    with pytest.raises(ModelDirError, match="segmenter: checkpoint .* does not load into sam2 config"):
        load_segmenter(wrong, "cpu")
