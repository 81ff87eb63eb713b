"""One edit end to end per attribute: the reference's own generator step and ours, on the tiny pipelines.

The reference's BackGen / ColorGen / TextureGen methods (loaders, get_prompt, pre_process, generate,
post_process; tests/reference_code.py) run as written, with its hub loaders handed our tiny pipelines and
Compel built by its own code. Three things are changed to run it here, and only these: its hard-coded
1024 px work square (and the 256 px swatch window, a quarter of it) become the tiny models' 64 (16) px,
"cuda" becomes the CPU, and its unseeded draws get seeds: the SD 2.1 noise from torch's global generator
seeded with our item's seed for that step, `random.choice([42, 3407])` answered with our item's choice,
the swatch corner from NumPy's global state (ours is then given the same corner).

The source is a 64 px square, so neither side resizes it. Under the paper settings (rounding: truncate,
seeding: reference, OpenCV's upscaling) the two images are equal, byte for byte, with two things set
aside and measured on their own:
- the harmonize mask (background): cv2's 41 px Gaussian in float64 there, PIL's on 8 bits here; with the
  reference's blur both are equal, with ours 1 % of the new background moves by up to 2 levels.
- prompt encoders (colour, texture): the reference encodes colour's refinement prompt with the ControlNet
  pipeline's Compel and texture's regeneration prompt with the inpainting pipeline's (fidelity.md,
  deviations kept in the edits); the equality tests give both tiny pipelines the same encoders, and one
  test measures the object's change with their own.
Our side of `rounding` (round, as diffusers' PIL output) puts half the edited pixels one level higher.
"""

from __future__ import annotations

import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from compel import Compel, ReturnedEmbeddingsType
from diffusers import DPMSolverMultistepScheduler
from PIL import Image
from pipeline_repo import REPO
from reference_code import generator_class, load, logger

from varireal.attributes import image_ops as ops
from varireal.attributes import texture as texture_module
from varireal.attributes.item import EditItem, Source
from varireal.attributes.pipelines import Editors
from varireal.attributes.registry import attribute_method
from varireal.attributes.steps import Job, reference_seed
from varireal.models import diffusion
from varireal.seeding import item_seed
from varireal.settings.whole import load_all_params

pytestmark = [pytest.mark.reference, pytest.mark.slow]

WORK = 64
ROLES = ("text2image", "inpaint", "regen_base", "controlnet", "regen_vae", "ip_adapter")
FILES = {
    "background": ("back_gen", "BackGen"),
    "color": ("color_gen", "ColorGen"),
    "texture": ("texture_gen", "TextureGen"),
}
REFERENCE_KEYS = {"oxford_pets": "oxford_pets", "fgvc_aircraft": "fgvc_aircraft", "stanford_cars": "cars"}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diffusion")
    for role in ROLES:
        getattr(diffusion, f"build_tiny_{role}")(root / role, seed=0)
    return root


def load_editors(root: Path, *, one_encoder: bool = False) -> Editors:
    """Fresh pipelines (the reference's loaders change them: scheduler, IP-Adapter scale). one_encoder: the
    inpainting pipeline gets the regeneration base's text encoders, so whichever Compel encodes a prompt
    gives the same embeddings."""
    inpaint = diffusion.load_inpaint(root / "inpaint", "cpu")
    regen = diffusion.load_regenerator(
        root / "regen_base", root / "controlnet", root / "regen_vae", root / "ip_adapter", "cpu"
    )
    if one_encoder:
        for name in ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2"):
            setattr(inpaint, name, getattr(regen, name))
    editors = Editors(diffusion.load_text2image(root / "text2image", "cpu"), inpaint, regen)
    for pipe in (editors.text2image, editors.inpaint, editors.regenerator):
        pipe.set_progress_bar_config(disable=True)
    return editors


class _Hub:
    """A from_pretrained that hands over one of our tiny pipelines (or anything), whatever the repo id."""

    def __init__(self, loaded) -> None:
        self.loaded = loaded

    def from_pretrained(self, *args, **kwargs):
        return self.loaded


def reference_generator(attribute: str, dataset: str, feasibility: str, editors: Editors, item: EditItem):
    """The reference's generator, its models loaded by its own loaders from our tiny pipelines."""
    for pipe in (editors.text2image, editors.inpaint, editors.regenerator):
        pipe.enable_model_cpu_offload = lambda *a, **k: None  # the reference's memory saving: one device here
    editors.regenerator.load_ip_adapter = lambda *a, **k: None  # the tiny regenerator has its IP-Adapter
    namespace = {
        "np": np,
        "cv2": cv2,
        "torch": torch,
        "Image": Image,
        "List": list,
        "random": types.SimpleNamespace(choice=lambda seeds: seeds[seeds.index(reference_seed(item))]),
        "Compel": Compel,
        "ReturnedEmbeddingsType": ReturnedEmbeddingsType,
        "DPMSolverMultistepScheduler": DPMSolverMultistepScheduler,
        "DiffusionPipeline": _Hub(editors.text2image),
        "AutoPipelineForInpainting": _Hub(editors.inpaint),
        "StableDiffusionXLControlNetPipeline": _Hub(editors.regenerator),
        "ControlNetModel": _Hub(None),
        "AutoencoderKL": _Hub(None),
    }
    file, cls = FILES[attribute]
    generator = generator_class(
        [("VariReal/src/generator/base.py", "BaseGenerator"), (f"VariReal/src/generator/{file}.py", cls)],
        namespace,
        constants={1024: WORK, 256: WORK // 4, "cuda": "cpu"},
    )()
    generator.logger, generator.cache_dir, generator.batch_size = logger(), None, 1
    generator.use_mask, generator.use_compel, generator.with_image, generator.give_post = True, True, False, False
    generator.feasibility, generator.dataset = feasibility == "feasible", REFERENCE_KEYS[dataset]
    generator.general_class, generator.category = item.source.class_name, attribute
    generator.feasible_prompts = generator.infeasible_prompts = None  # the value is set per test, not drawn
    generator._load_pipeline_model()
    return generator


def photo(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 64 px square photo stand-in and its 0/255 object mask (an ellipse)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:WORK, 0:WORK] / WORK
    base = np.stack([200 * xx + 30, 180 * yy + 40, 60 * (xx + yy) + 60], -1)
    image = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((WORK, WORK), np.uint8)
    cv2.ellipse(mask, (32, 34), (17, 12), 15, 0, 360, 255, -1)
    return image, mask


def run_reference(attribute: str, generator, item: EditItem, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """initialize_pipeline .. post_process as main_pipeline.py:190-209 runs them, for slot 0."""
    generator.initialize_pipeline(image, mask, item.source.class_name)
    entry = item.value if not item.description else f"{item.value}: {item.description}"
    generator.prompt_words = [entry]
    prompts = generator.get_prompt(0, item.source.class_name)
    first = {"background": "scene", "texture": "swatch"}.get(attribute)
    if first:  # the reference's SD 2.1 call is unseeded: it draws from torch's global generator
        torch.manual_seed(item_seed(item.seed, first))
    np.random.seed(5)  # the swatch corner (texture) and the batch pick (colour, texture) draw from here
    images, masks, other = generator.pre_process(preprocess_prompts=prompts)
    generated = generator.generate(prompts, images, masks, other)
    final = generator.post_process(generated)
    general_postprocess = load("VariReal/src/utils/utils.py", ["general_postprocess"], {"cv2": cv2, "np": np})
    restored = general_postprocess["general_postprocess"](final, [WORK, WORK], new_size=WORK)
    return restored[0].astype(np.uint8)


def run_ours(
    attribute: str, settings, editors: Editors, item: EditItem, image: np.ndarray, mask: np.ndarray, monkeypatch
):
    if attribute == "texture":  # the reference's corner, replayed from NumPy's global state
        np.random.seed(5)
        corner = (np.random.randint(0, WORK - WORK // 4 + 1), np.random.randint(0, WORK - WORK // 4 + 1))
        monkeypatch.setattr(texture_module, "crop_corner", lambda *a: corner)
    square = ops.work_square(Image.fromarray(image), Image.fromarray(mask), WORK)
    edited = attribute_method(attribute).edit(editors, [Job(item, square)], settings)
    return np.asarray(edited[0].image)


def paper_settings(dataset: str, attribute: str, feasibility: str):
    """The paper profile's block at the tiny size: its 1024 px generation size is the work square here."""
    method = (
        load_all_params(REPO / "params.yaml", ["profile=paper"])
        .edit.pick("paper")
        .method(dataset, attribute, feasibility)
    )
    for step in ("scene", "swatch"):
        if hasattr(method, step):
            method = method.model_copy(update={step: getattr(method, step).model_copy(update={"size": WORK})})
    return method


def item_for(attribute: str, dataset: str, feasibility: str, value: str, description: str, rgb=None) -> EditItem:
    prefix = {"oxford_pets": "pet", "fgvc_aircraft": "aircraft", "stanford_cars": "car"}[dataset]
    source = Source("x", REPO / "x.png", "Abyssinian" if dataset == "oxford_pets" else "Boeing 707-320", 0, None)
    seed = item_seed(0, "x", attribute, feasibility, 0, 0)
    return EditItem(
        "x_s0c0",
        source,
        attribute,
        feasibility,
        value,
        description,
        0,
        0,
        seed,
        prefix,
        rgb,
        "reference" if rgb else "",
    )


CASES = {
    "background": ("stanford_cars", "feasible", "(suburban street)1.2", "rows of houses and parked cars"),
    "color": ("oxford_pets", "infeasible", "(neon pink)1.3", ""),
    "texture": ("fgvc_aircraft", "feasible", "(brushed aluminium)1.2", "fine parallel metal grain"),
}


def compare(
    attribute: str, root: Path, monkeypatch, *, one_encoder: bool, rounding: str = "truncate"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dataset, feasibility, value, description = CASES[attribute]
    image, mask = photo(1)
    rgb = None
    if attribute == "color":
        from reference_code import class_literals

        name = value[1 : value.index(")")]
        rgb = tuple(class_literals("VariReal/src/generator/color_gen.py", "ColorGen")["COLORS"][name])
    item = item_for(attribute, dataset, feasibility, value, description, rgb)
    settings = paper_settings(dataset, attribute, feasibility)
    assert settings.rounding == "truncate" and settings.seeding == "reference"
    settings = settings.model_copy(update={"rounding": rounding})
    monkeypatch.chdir(root)  # BackGen.get_prompt makes a debug folder in the working directory
    theirs_editors, ours_editors = (
        load_editors(root, one_encoder=one_encoder),
        load_editors(root, one_encoder=one_encoder),
    )
    generator = reference_generator(attribute, dataset, feasibility, theirs_editors, item)
    theirs = run_reference(attribute, generator, item, image, mask)
    ours = run_ours(attribute, settings, ours_editors, item, image, mask, monkeypatch)
    return theirs, ours, mask == 255


def reference_blur(mask: np.ndarray, blur_px: float) -> Image.Image:
    """BackGen.pre_process's harmonize mask (cv2, 41 px kernel, float64), rounded to 8 bits: the pipeline's
    binarization at 0.5 then sees exactly the reference's mask."""
    blurred = cv2.GaussianBlur(255.0 - mask.astype(np.uint8) * 255.0, (41, 41), 0)
    return Image.fromarray(np.rint(blurred).astype(np.uint8), mode="L")


@pytest.mark.filterwarnings("ignore:Passing `image` as torch tensor:FutureWarning")  # the reference's [-1, 1] tensors
@pytest.mark.parametrize("attribute", ["background", "color", "texture"])
def test_the_references_step_and_ours_give_the_same_image(attribute, tiny_dirs, monkeypatch):
    if attribute == "background":  # the blur's own difference: the next test and test_reference_edit_ops.py
        monkeypatch.setattr(ops, "soft_mask", lambda mask, blur_px: reference_blur(~mask, blur_px))
    theirs, ours, _ = compare(attribute, tiny_dirs, monkeypatch, one_encoder=True)
    assert np.array_equal(theirs, ours)


@pytest.mark.filterwarnings("ignore:Passing `image` as torch tensor:FutureWarning")
def test_our_harmonize_blur_moves_the_background_edit_by_a_level_or_two(tiny_dirs, monkeypatch):
    theirs, ours, inside = compare("background", tiny_dirs, monkeypatch, one_encoder=True)
    assert np.array_equal(theirs[inside], ours[inside])
    apart = np.abs(theirs.astype(int) - ours.astype(int))[~inside]
    assert 0 < apart.max() <= 2  # measured: 2 levels at most, on 1 % of the new background's pixels


@pytest.mark.filterwarnings("ignore:Passing `image` as torch tensor:FutureWarning")
def test_our_rounding_puts_half_the_edited_pixels_a_level_above_the_references(tiny_dirs, monkeypatch):
    theirs, ours, inside = compare("color", tiny_dirs, monkeypatch, one_encoder=True, rounding="round")
    assert np.array_equal(theirs[~inside], ours[~inside])
    apart = ours.astype(int)[inside] - theirs.astype(int)[inside]
    assert apart.min() >= 0 and apart.max() == 1 and 0.3 < (apart > 0).mean() < 0.7  # measured: 50 %


@pytest.mark.filterwarnings("ignore:Passing `image` as torch tensor:FutureWarning")
@pytest.mark.parametrize("attribute", ["color", "texture"])
def test_the_references_encoder_wiring_changes_the_object(attribute, tiny_dirs, monkeypatch):
    """With the tiny pipelines' own (different) text encoders, the reference's crossed Compel wiring shows
    (measured: colour 72 % of the object's pixels, up to 5 levels; texture 94 %, up to 31)."""
    theirs, ours, inside = compare(attribute, tiny_dirs, monkeypatch, one_encoder=False)
    assert np.array_equal(theirs[~inside], ours[~inside])
    assert np.abs(theirs.astype(int) - ours.astype(int))[inside].max() > 1
