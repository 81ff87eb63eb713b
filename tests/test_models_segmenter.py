"""Tiny SAM 2.1: built deterministically as a sam2 checkpoint, loaded by build_sam2, masking box prompts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from varireal.models.errors import ModelDirError
from varireal.models.load import load_segmenter, sam2_feature_sizes
from varireal.models.lock import file_hashes
from varireal.models.mask_prompt_roles import CORE_ROLES
from varireal.models.segmenter import SAM2_JSON, SAM2_OVERRIDE_KEYS, read_sam2_json, write_sam2_json
from varireal.models.tiny import SAM2_TINY_CHECKPOINT, SAM2_TINY_CONFIG, build_segmenter, sam2_tiny_overrides


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


# --- sam2.json never chooses code to run -------------------------------------------------------------


def test_the_tiny_sam2_json_is_allowed_and_its_keys_are_the_allow_list(built):
    info = read_sam2_json(built)
    assert info["hydra_overrides"] == sam2_tiny_overrides()
    assert [o[2:].split("=")[0] for o in sam2_tiny_overrides()] == list(SAM2_OVERRIDE_KEYS)
    assert CORE_ROLES["segmenter"].problems(built) == [] and CORE_ROLES["segmenter"].class_name(built) == "SAM2Base"


def crafted(built, tmp_path, **changes):
    """A copy of the tiny segmenter whose sam2.json is changed; `extra` adds hydra overrides."""
    target = tmp_path / "crafted"
    shutil.copytree(built, target)
    info = json.loads((target / SAM2_JSON).read_text())
    info["hydra_overrides"] += changes.pop("extra", [])
    (target / SAM2_JSON).write_text(json.dumps({**info, **changes}))
    return target


OVERRIDES_ALLOWED = "allowed: ++<key>=<number or [n,n,...]> with <key> one of: model.image_size, "
CONFIGS_ALLOWED = "allowed: configs/sam2.1/sam2.1_hiera_b+.yaml, "
CHECKPOINT_ALLOWED = "(e.g. sam2.1_hiera_large.pt; no '/', no '..', no absolute path)"
# case: (changes to sam2.json, what the message says is wrong, what it says is allowed)
REFUSED = {
    "a _target_ override": (
        dict(extra=["++model._target_=os.system"]),
        "hydra override '++model._target_=os.system' sets 'model._target_', which is not an allowed key",
        OVERRIDES_ALLOWED,
    ),
    "a hydra.utils target": (
        dict(extra=["++model.image_encoder.trunk._target_=hydra.utils.get_method"]),
        "sets 'model.image_encoder.trunk._target_', which is not an allowed key",
        OVERRIDES_ALLOWED,
    ),
    "hydra.utils as a value": (
        dict(extra=["++model.image_size=hydra.utils.call"]),
        "sets 'model.image_size' to 'hydra.utils.call', which is not a number or a list of numbers",
        OVERRIDES_ALLOWED,
    ),
    "a non-numeric value": (
        dict(extra=["++model.memory_encoder.out_dim=${oc.env:HOME}"]),
        "to '${oc.env:HOME}', which is not a number or a list of numbers",
        OVERRIDES_ALLOWED,
    ),
    "another override form": (
        dict(extra=["model.image_size=256"]),
        "hydra override 'model.image_size=256' is not of the form ++<key>=<value>",
        OVERRIDES_ALLOWED,
    ),
    "overrides that are no list": (
        dict(hydra_overrides="++model.image_size=256"),
        "hydra_overrides='++model.image_size=256'",
        "is not a list of override strings",
    ),
    "a config elsewhere": (
        dict(config="/tmp/evil.yaml"),
        "config='/tmp/evil.yaml' is not one of sam2's packaged configs",
        CONFIGS_ALLOWED,
    ),
    "a training config": (
        dict(config="configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"),
        "_finetune.yaml' is not one of sam2's packaged configs",
        CONFIGS_ALLOWED,
    ),
    "a checkpoint outside": (
        dict(checkpoint="../x.pt"),
        "checkpoint='../x.pt' is not a plain file name inside the model directory",
        CHECKPOINT_ALLOWED,
    ),
    "an absolute checkpoint": (
        dict(checkpoint="/etc/passwd"),
        "checkpoint='/etc/passwd' is not a plain file name inside the model directory",
        CHECKPOINT_ALLOWED,
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_crafted_sam2_json_is_refused_naming_the_file_the_entry_and_what_is_allowed(case, built, tmp_path):
    changes, wrong, allowed = REFUSED[case]
    target = crafted(built, tmp_path, **changes)
    kind = CORE_ROLES["segmenter"]
    # the loader, and what resolve_models asks of every directory (complete? which class?)
    for read in (lambda: load_segmenter(target, "cpu"), lambda: kind.problems(target), lambda: kind.class_name(target)):
        with pytest.raises(ModelDirError) as info:
            read()
        message = str(info.value)
        assert message.startswith(f"{target / SAM2_JSON}: refused")
        assert wrong in message and allowed in message


def test_a_refused_target_is_never_run(built, tmp_path, monkeypatch):
    """The override pair below makes hydra call Path.touch(marker) (it did, before sam2.json was checked)."""
    import hydra
    import sam2.build_sam

    def reached(*args, **kwargs):
        raise AssertionError("hydra was reached with a refused sam2.json")

    monkeypatch.setattr(hydra, "compose", reached)
    monkeypatch.setattr(sam2.build_sam, "build_sam2", reached)
    marker = tmp_path / "pwned"
    target = crafted(built, tmp_path, extra=["++model.evil._target_=pathlib.Path.touch", f"++model.evil.self={marker}"])
    with pytest.raises(ModelDirError, match="'model.evil._target_', which is not an allowed key"):
        load_segmenter(target, "cpu")
    with pytest.raises(ModelDirError, match="not an allowed key"):
        CORE_ROLES["segmenter"].class_name(target)
    assert not marker.exists()


def test_the_writer_refuses_what_the_reader_would(tmp_path):
    with pytest.raises(ModelDirError, match=r"'\+\+model._target_=os.system' sets 'model._target_'"):
        write_sam2_json(tmp_path, SAM2_TINY_CONFIG, SAM2_TINY_CHECKPOINT, 256, ["++model._target_=os.system"])
    with pytest.raises(ModelDirError, match="checkpoint='sub/../x.pt'"):
        write_sam2_json(tmp_path, SAM2_TINY_CONFIG, "sub/../x.pt", 256, [])
    assert not (tmp_path / SAM2_JSON).exists()
    with pytest.raises(ValueError, match="config='/tmp/evil.yaml'"):
        build_segmenter(tmp_path / "evil", seed=0, config="/tmp/evil.yaml")
