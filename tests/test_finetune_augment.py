"""How training images look to the model: varireal.finetune.augment, and the JPEG round trip of varireal.finetune.data.

Under `profile: paper` both follow the reference (Finetune/classify/data.py:58-84): RandAugment on
the full image before the crop, its jitter/grayscale/blur/solarize numbers, and images as they
read back from PIL's quality-75 JPEG files.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image, ImageFilter, ImageOps
from pipeline_repo import dvc_params
from pydantic import ValidationError
from torchvision.transforms import InterpolationMode, v2

from varireal.finetune.augment import PilGaussianBlur, train_transform
from varireal.finetune.data import SELECTION_COLUMNS, ImageRows, jpeg_round_trip, training_jpeg_quality
from varireal.finetune.model import class_prompts
from varireal.images import png_bytes, read_image_rgb
from varireal.params import read_raw
from varireal.settings.train import AugmentParams, MachineParams
from varireal.settings.whole import load_all_params
from varireal.shards import Sample, write_shard

REPO = Path(__file__).resolve().parents[1]
SIDE = 24
MEAN, STD = (0.0,) * 3, (1.0,) * 3  # the output is the crop's pixels / 255: easy to compare
# Every step present but doing nothing: the whole image, no flip, no colour change.
IDENTITY = dict(
    randaugment_ops=0,
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    flip_p=0.0,
    color_jitter=dict(brightness=0, contrast=0, saturation=0, hue=0, p=0.0),
    grayscale_p=0.0,
    blur=dict(p=0.0, sigma=(0.1, 2.0)),
    solarize=dict(p=0.0, threshold=128),
)


def _picture(width: int = SIDE, height: int = SIDE, seed: int = 0) -> Image.Image:
    """Colourful noise with a bright block: every adjustment visibly changes it."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (250, 200, 30)
    return Image.fromarray(pixels)


def _augment(**changes) -> AugmentParams:
    return AugmentParams(**{**IDENTITY, **changes})


def _pixels(image: Image.Image) -> torch.Tensor:
    """The tensor the transform ends in for an image it left as is (mean 0, std 1)."""
    return v2.ToDtype(torch.float32, scale=True)(v2.ToImage()(image)).as_subclass(torch.Tensor)


def _apply(augment: AugmentParams, image: Image.Image, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return train_transform(SIDE, MEAN, STD, augment)(image)


def _steps(transform: v2.Compose) -> dict[type, object]:
    return {type(step): step for step in transform.transforms}


# --- the paper's numbers ------------------------------------------------------------------------


def test_the_paper_profile_holds_the_references_augmentation_and_each_number_reaches_its_step():
    params = load_all_params(REPO / "params.yaml", ["profile=paper"])
    augment = params.train.paper.augment
    assert augment.model_dump() == {
        "randaugment_first": True,
        "randaugment_ops": 2,
        "randaugment_magnitude": 9,
        "crop_scale": (0.25, 1.0),
        "crop_ratio": (3 / 4, 4 / 3),
        "flip_p": 0.5,
        "color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1, "p": 0.8},
        "grayscale_p": 0.2,
        "blur": {"p": 0.2, "sigma": (0.1, 2.0)},
        "solarize": {"p": 0.2, "threshold": 128},
    }
    assert augment == AugmentParams()  # the defaults are the reference's too
    transform = train_transform(224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), augment)
    kinds = [type(step) for step in transform.transforms]
    assert kinds == [
        v2.RandAugment,
        v2.RandomResizedCrop,
        v2.RandomHorizontalFlip,
        v2.RandomApply,
        v2.RandomGrayscale,
        PilGaussianBlur,
        v2.RandomSolarize,
        v2.ToImage,
        v2.ToDtype,
        v2.Normalize,
    ]
    steps = _steps(transform)
    randaugment = steps[v2.RandAugment]
    # torchvision's defaults beyond ops and magnitude, as the reference's RandAugment() used them
    assert (randaugment.num_ops, randaugment.magnitude, randaugment.num_magnitude_bins) == (2, 9, 31)
    assert InterpolationMode(randaugment.interpolation) == InterpolationMode.NEAREST and randaugment.fill is None
    crop = steps[v2.RandomResizedCrop]
    assert (crop.size, crop.scale, crop.ratio, crop.interpolation) == (
        (224, 224),
        (0.25, 1.0),
        (3 / 4, 4 / 3),
        InterpolationMode.BICUBIC,
    )
    assert steps[v2.RandomHorizontalFlip].p == 0.5
    jitter_step = steps[v2.RandomApply]
    jitter = jitter_step.transforms[0]
    assert jitter_step.p == 0.8 and isinstance(jitter, v2.ColorJitter)
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        (0.6, 1.4),
        (0.6, 1.4),
        (0.8, 1.2),
        (-0.1, 0.1),
    )
    assert steps[v2.RandomGrayscale].p == 0.2
    assert (steps[PilGaussianBlur].p, steps[PilGaussianBlur].sigma) == (0.2, (0.1, 2.0))
    assert (steps[v2.RandomSolarize].p, steps[v2.RandomSolarize].threshold) == (0.2, 128)
    assert steps[v2.Normalize].mean == [0.48145466, 0.4578275, 0.40821073]


def test_randaugment_sees_the_full_image_before_the_crop_or_the_crop_after_it():
    image = _picture(90, 120)
    for first, seen in ((True, (90, 120)), (False, (SIDE, SIDE))):
        transform = train_transform(SIDE, MEAN, STD, AugmentParams(randaugment_first=first))
        torch.manual_seed(0)
        sizes, step_input = [], image
        for step in transform.transforms:
            if isinstance(step, v2.RandAugment):
                sizes.append(step_input.size)
            step_input = step(step_input)
        assert sizes == [seen]
        assert step_input.shape == (3, SIDE, SIDE)
    crop_first = [type(s) for s in train_transform(SIDE, MEAN, STD, AugmentParams(randaugment_first=False)).transforms]
    assert crop_first[:3] == [v2.RandomResizedCrop, v2.RandomHorizontalFlip, v2.RandAugment]


# --- each setting does what it says ---------------------------------------------------------------


def test_with_every_step_off_the_image_passes_unchanged():
    image = _picture()
    assert torch.equal(_apply(_augment(), image, seed=3), _pixels(image))


@pytest.mark.parametrize(
    "changes, expected",
    [
        (dict(flip_p=1.0), lambda image: ImageOps.mirror(image)),
        (dict(grayscale_p=1.0), lambda image: image.convert("L").convert("RGB")),
        (dict(solarize=dict(p=1.0, threshold=128)), lambda image: ImageOps.solarize(image, 128)),
        (dict(solarize=dict(p=1.0, threshold=200)), lambda image: ImageOps.solarize(image, 200)),
        (dict(blur=dict(p=1.0, sigma=(1.5, 1.5))), lambda image: image.filter(ImageFilter.GaussianBlur(1.5))),
    ],
    ids=["flip", "grayscale", "solarize-128", "solarize-200", "blur-sigma-1.5"],
)
def test_a_step_set_to_always_gives_exactly_its_pil_operation(changes, expected):
    image = _picture()
    assert torch.equal(_apply(_augment(**changes), image, seed=0), _pixels(expected(image)))


@pytest.mark.parametrize("strength", ["brightness", "contrast", "saturation", "hue"])
def test_each_color_jitter_strength_changes_the_image_and_p_zero_turns_it_off(strength):
    image = _picture()
    jitter = dict(brightness=0, contrast=0, saturation=0, hue=0, p=1.0)
    changed = [
        not torch.equal(_apply(_augment(color_jitter={**jitter, strength: 0.3}), image, s), _pixels(image))
        for s in range(5)
    ]
    assert all(changed)
    off = _augment(color_jitter={**jitter, strength: 0.3, "p": 0.0})
    assert all(torch.equal(_apply(off, image, s), _pixels(image)) for s in range(5))


def test_the_hue_shift_grows_with_its_setting():
    image = _picture()

    def mean_change(hue: float) -> float:
        augment = _augment(color_jitter=dict(brightness=0, contrast=0, saturation=0, hue=hue, p=1.0))
        return float(np.mean([(_apply(augment, image, s) - _pixels(image)).abs().mean() for s in range(20)]))

    assert 0 < mean_change(0.02) < mean_change(0.1) < mean_change(0.4)


def test_randaugment_ops_and_magnitude_reach_randaugment():
    image = _picture()
    assert torch.equal(_apply(_augment(randaugment_ops=0, randaugment_magnitude=30), image, 0), _pixels(image))
    changes = [
        not torch.equal(_apply(_augment(randaugment_ops=2, randaugment_magnitude=9), image, s), _pixels(image))
        for s in range(10)
    ]
    assert sum(changes) >= 5


def test_crop_scale_and_ratio_reach_the_crop():
    """A 96 px square cropped at area share 1/4 and ratio 1: a 48 px square, scaled to 24 px."""
    image = _picture(96, 96)
    augment = _augment(crop_scale=(0.25, 0.25), crop_ratio=(1.0, 1.0))
    crop = _steps(train_transform(SIDE, MEAN, STD, augment))[v2.RandomResizedCrop]
    for seed in range(3):
        torch.manual_seed(seed)  # RandAugment with no op draws nothing: the crop's draws come first
        window = crop.make_params([image])
        assert (window["height"], window["width"]) == (48, 48)
        box = (window["left"], window["top"], window["left"] + 48, window["top"] + 48)
        expected = image.crop(box).resize((SIDE, SIDE), Image.BICUBIC)
        assert torch.equal(_apply(augment, image, seed), _pixels(expected))


@pytest.mark.parametrize(
    "changes, p",
    [
        (dict(flip_p=0.5), 0.5),
        (dict(grayscale_p=0.2), 0.2),
        (dict(blur=dict(p=0.2, sigma=(0.1, 2.0))), 0.2),
        (dict(solarize=dict(p=0.2, threshold=128)), 0.2),
        (dict(color_jitter=dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8)), 0.8),
    ],
    ids=["flip", "grayscale", "blur", "solarize", "color_jitter"],
)
def test_a_step_fires_on_the_share_of_images_its_p_says(changes, p):
    image = _picture()
    transform, unchanged, draws = train_transform(SIDE, MEAN, STD, _augment(**changes)), _pixels(image), 400
    fired = 0
    for seed in range(draws):
        torch.manual_seed(seed)
        fired += not torch.equal(transform(image), unchanged)
    # 4.5 binomial standard deviations: a wrong p (0.1 for 0.2, say) falls outside
    assert abs(fired / draws - p) < 4.5 * (p * (1 - p) / draws) ** 0.5


# --- the blur's randomness ----------------------------------------------------------------------


def _rows(files: list[Path], kind: str = "real", ranges: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    ranges = ranges or [(-1, 0)] * len(files)
    return pd.DataFrame(
        [
            {
                "kind": kind,
                "id": f"img{i}",
                "file": str(path),
                "offset": offset,
                "size": size,
                "class_index": 0,
                "class_name": "cat",
                "feasibility": "",
                "attribute": "",
                "value": "",
                "source_id": f"img{i}",
            }
            for i, (path, (offset, size)) in enumerate(zip(files, ranges))
        ],
        columns=SELECTION_COLUMNS,
    )


def test_the_blur_draws_from_the_item_seed_never_from_global_state(tmp_path):
    path = tmp_path / "a.png"
    _picture(32, 32).save(path)
    blur_only = v2.Compose([PilGaussianBlur(1.0, (0.1, 2.0)), v2.ToImage()])
    dataset = ImageRows(_rows([path]), blur_only, seed=7)
    random.seed(1)
    torch.manual_seed(1)
    python_state, torch_state = random.getstate(), torch.get_rng_state()
    first = dataset[(0, 0)][0]
    random.seed(2)  # Python's random: whatever its state, the same item gives the same blur
    assert torch.equal(dataset[(0, 0)][0], first)
    assert random.getstate() == random.Random(2).getstate()  # and the blur never draws from it
    random.setstate(python_state)
    assert torch.equal(torch.get_rng_state(), torch_state)  # nor moves torch's global stream
    assert not torch.equal(dataset[(0, 1)][0], first)  # another pass: another radius
    assert not torch.equal(ImageRows(_rows([path]), blur_only, seed=8)[(0, 0)][0], first)  # another seed


def test_the_blur_radius_is_drawn_from_sigma():
    image = _picture(32, 32)
    radii = {s: image.filter(ImageFilter.GaussianBlur(s)).tobytes() for s in (0.5, 1.0, 1.7)}
    for sigma, expected in radii.items():
        torch.manual_seed(0)
        assert PilGaussianBlur(1.0, (sigma, sigma))(image).tobytes() == expected
    with pytest.raises(TypeError, match="PIL images"):
        PilGaussianBlur(1.0, (0.1, 2.0))(torch.zeros(3, 4, 4))


# --- the JPEG round trip --------------------------------------------------------------------------


def test_the_jpeg_round_trip_is_pils_default_save_and_is_deterministic():
    image = _picture(45, 37)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")  # as the reference saved: PIL's defaults, quality 75
    with Image.open(buffer) as saved:
        as_reference = saved.convert("RGB")
    once = jpeg_round_trip(image, 75)
    assert once.mode == "RGB" and once.size == image.size
    assert once.tobytes() == as_reference.tobytes() == jpeg_round_trip(image, 75).tobytes()
    assert once.tobytes() != image.tobytes()
    assert jpeg_round_trip(image, 95).tobytes() not in (once.tobytes(), image.tobytes())


def test_training_rows_read_through_jpeg_from_files_and_shards_and_evaluation_rows_do_not(tmp_path):
    loose, shard = tmp_path / "real.png", tmp_path / "synthetic-00000.tar"
    real, synthetic = _picture(40, 30, seed=1), _picture(30, 40, seed=2)
    real.save(loose)
    (entry,) = write_shard(shard, [Sample("edit-0", png_bytes(synthetic), {"edit_id": "edit-0"})])
    rows = pd.concat(
        [_rows([loose]), _rows([shard], kind="synthetic", ranges=[(entry.offset, entry.size)]).assign(id="edit-0")]
    )
    rows = rows.reset_index(drop=True)
    as_stored = ImageRows(rows, v2.ToImage())  # evaluation's way: no jpeg_quality
    assert as_stored.read(0).tobytes() == read_image_rgb(loose).tobytes() == real.tobytes()
    assert as_stored.read(1).tobytes() == synthetic.tobytes()
    training = ImageRows(rows, v2.ToImage(), jpeg_quality=75, cache=True)
    for index, source in enumerate((real, synthetic)):
        assert training.read(index).tobytes() == jpeg_round_trip(source, 75).tobytes() != source.tobytes()
        assert training.image(index).tobytes() == training.read(index).tobytes()  # the cache keeps the round trip


def test_only_a_real_only_run_reads_its_images_as_stored():
    assert training_jpeg_quality(75, "synthetic_real") == training_jpeg_quality(75, "synthetic_only") == 75
    assert training_jpeg_quality(75, "real_only") is None  # the reference's baseline read the original files
    assert training_jpeg_quality(None, "synthetic_real") is None


def test_jpeg_quality_is_a_setting_in_pils_range():
    params = load_all_params(REPO / "params.yaml", ["profile=paper"])
    assert params.train.paper.jpeg_quality == 75 and params.train.tiny.jpeg_quality == 75
    assert load_all_params(REPO / "params.yaml", ["train.jpeg_quality=null"]).train.paper.jpeg_quality is None
    fields = {**params.train.paper.model_dump(), "lora": params.train.paper.lora}
    for bad in (0, 96, 100):
        with pytest.raises(ValidationError, match="jpeg_quality"):
            MachineParams(**{**fields, "jpeg_quality": bad})


# --- settings --------------------------------------------------------------------------------------


def test_the_flat_augment_keys_of_before_are_named_with_their_new_place():
    with pytest.raises(ValidationError) as err:
        AugmentParams(color_jitter=0.4, color_jitter_p=0.8, blur_p=0.1, solarize_p=0.1)
    message = str(err.value)
    for text in (
        "color_jitter is now color_jitter: {brightness, contrast, saturation, hue, p}",
        "color_jitter_p is now color_jitter.p",
        "blur_p is now blur.p",
        "solarize_p is now solarize.p",
    ):
        assert text in message


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(crop_scale=(0.5, 0.2)), "crop_scale=[0.5, 0.2]: need 0 < low <= high <= 1"),
        (dict(crop_scale=(0.0, 1.0)), "crop_scale=[0.0, 1.0]: need 0 < low <= high <= 1"),
        (dict(crop_ratio=(1.5, 0.5)), "crop_ratio=[1.5, 0.5]: need 0 < low <= high"),
        (dict(blur=dict(p=0.2, sigma=(0.0, 2.0))), "sigma=[0.0, 2.0]: need 0 < low <= high"),
        (dict(color_jitter=dict(hue=0.6)), "color_jitter.hue"),
        (dict(color_jitter=dict(saturation=-0.1)), "color_jitter.saturation"),
        (dict(solarize=dict(threshold=256)), "solarize.threshold"),
        (dict(randaugment_magnitude=31), "randaugment_magnitude"),
        (dict(color_jitter=dict(gamma=0.1)), "color_jitter.gamma"),
    ],
)
def test_impossible_augment_settings_are_refused_by_name(changes, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        AugmentParams(**changes)


def test_a_bad_augment_setting_in_params_yaml_names_its_key(tmp_path):
    raw = read_raw(REPO / "params.yaml")
    raw["train"]["augment"]["blur"]["sigma"] = [2.0, 0.1]  # shared by both profiles: named where it is written
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=re.escape("train.augment.blur") + ".*" + re.escape("sigma=[2.0, 0.1]")):
        load_all_params(path)


# --- the class text ----------------------------------------------------------------------------------


def test_the_paper_template_gives_the_references_text_and_no_double_space_for_an_empty_prefix():
    params = load_all_params(REPO / "params.yaml", ["profile=paper"])
    template = params.train.paper.template
    pets, demo = params.datasets["oxford_pets"].prefix, params.datasets["demo"].prefix
    # the reference: TEMPLATES_SMALL[0] "a {}photo of a {}" with "pet " (util_data.py:103, models/clip.py:14-30)
    assert class_prompts(["Abyssinian", "Bengal"], template, pets) == [
        "a pet photo of a Abyssinian",
        "a pet photo of a Bengal",
    ]
    assert class_prompts(["coffee cup"], template, demo) == ["a photo of a coffee cup"]
    assert class_prompts(["Boeing 707"], template, params.datasets["fgvc_aircraft"].prefix) == [
        "a aircraft photo of a Boeing 707"
    ]


def test_a_new_template_or_jpeg_quality_reruns_the_stages_that_use_them():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "method.yaml:train.${profile}.template" in dvc_params(stages["evaluate"])  # scored with training's text
    assert {"method.yaml:train.${profile}.template", "train.jpeg_quality"} <= dvc_params(stages["train"])
