"""Edit settings per dataset and feasibility, and the switches between the reference's behaviour and ours.

The switches run on the tiny pipelines of test_edit_methods.py (built once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_edit_methods import SETTINGS, WORK, _write_source, editors  # noqa: F401  (editors: a fixture)

from varireal.attributes import image_ops as ops
from varireal.attributes import steps, texture
from varireal.attributes.step_settings import Canny
from varireal.edit.by_hand import edit_image
from varireal.params import read_raw, with_shared_settings
from varireal.settings.edit import EditParams
from varireal.settings.whole import Params, load_all_params

REPO = Path(__file__).resolve().parents[1]


def _params_with(tmp_path: Path, change) -> Path:
    """The params (both files, as one) with `change` applied to the whole paper block of edit (its shared keys
    merged in), written as one params.yaml."""
    params = with_shared_settings(read_raw(REPO / "params.yaml"), Params)
    change(params["edit"]["paper"])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_paper_profile_resolves_the_references_numbers_per_dataset_and_feasibility():
    edit = load_all_params(REPO / "params.yaml").edit.pick("paper")
    # background: the same for both feasibilities (back_gen.py:191-208)
    for dataset, side, guidance, strength in (
        ("oxford_pets", 120, 40, 0.99),
        ("fgvc_aircraft", 50, 7.5, 0.95),
        ("stanford_cars", 25, 7.5, 0.9),
    ):
        for feasibility in ("feasible", "infeasible"):
            background = edit.method(dataset, "background", feasibility)
            assert (background.dilation.kernel, background.dilation.size) == ("square", side)
            assert (background.harmonize.guidance, background.harmonize.strength) == (guidance, strength)
            assert background.scene.size == 1024 and background.scene.negative_prompt == ""
    # fixed tint alphas (color_gen.py:504-535) and texture per feasibility (texture_gen.py:169-182, 375-409)
    alphas = {
        (d, f): edit.method(d, "color", f).alpha
        for d in ("oxford_pets", "fgvc_aircraft", "stanford_cars")
        for f in ("feasible", "infeasible")
    }
    assert {key: (a.low, a.high) for key, a in alphas.items()} == {
        ("oxford_pets", "feasible"): (0.3, 0.3),
        ("oxford_pets", "infeasible"): (0.5, 0.5),
        ("fgvc_aircraft", "feasible"): (0.6, 0.6),
        ("fgvc_aircraft", "infeasible"): (0.65, 0.65),
        ("stanford_cars", "feasible"): (0.6, 0.6),
        ("stanford_cars", "infeasible"): (0.6, 0.6),
    }
    pets_i, cars_f = (
        edit.method("oxford_pets", "texture", "infeasible"),
        edit.method("stanford_cars", "texture", "feasible"),
    )
    assert (pets_i.alpha.low, pets_i.regenerate.ip_adapter_scale, pets_i.refine.strength) == (0.4, 0.5, 0.3)
    assert (cars_f.refine.guidance, cars_f.refine.strength, cars_f.regenerate.ip_adapter_scale) == (30.0, 0.65, 0.65)
    assert edit.method("stanford_cars", "texture", "infeasible").refine.guidance == 8.0
    color = edit.method("oxford_pets", "color", "feasible")
    assert color.regenerate.canny == Canny(source="object_on_white", low="auto", high=255)
    assert (color.regenerate.controlnet_scale, color.regenerate.ip_adapter_fill, color.prompt_weighting) == (
        1.0,
        100,
        "compel",
    )
    assert not edit.method("oxford_pets", "color", "feasible").feasibility  # resolved: no differences left


def test_a_blocks_feasibility_differences_are_merged_into_it_key_by_key(tmp_path):
    def tune(paper: dict) -> None:
        paper["methods"]["color"]["feasibility"] = {"infeasible": {"alpha": {"low": 0.1, "high": 0.2}}}
        cars = paper["datasets"]["stanford_cars"]["color"]
        cars["refine"].update(strength=0.7, guidance=9.0)
        cars["feasibility"] = {"infeasible": {"refine": {"strength": 0.6}}}

    edit = load_all_params(_params_with(tmp_path, tune)).edit.pick("paper")
    feasible, infeasible = (
        edit.method("stanford_cars", "color", "feasible"),
        edit.method("stanford_cars", "color", "infeasible"),
    )
    assert (feasible.refine.strength, feasible.refine.guidance) == (0.7, 9.0)  # the dataset's block
    assert (infeasible.refine.strength, infeasible.refine.guidance) == (0.6, 9.0)  # + its feasibility's
    assert infeasible.alpha == feasible.alpha  # `methods`' differences belong to `methods`' block only
    assert feasible.model_copy(update={"refine": infeasible.refine}) == infeasible
    demo = edit.method("demo", "color", "infeasible")  # no block of its own: `methods` and its feasibility
    assert (demo.alpha.low, demo.alpha.high) == (0.1, 0.2) and demo.refine == edit.methods.color.refine


def test_method_names_the_allowed_feasibilities():
    edit: EditParams = load_all_params(REPO / "params.yaml").edit.pick("tiny")
    with pytest.raises(ValueError, match="feasibility='mixed': expected feasible or infeasible"):
        edit.method("demo", "color", "mixed")
    assert edit.method("demo", "color", "infeasible").alpha.low == 0.5  # tiny exercises a feasibility difference
    assert edit.method("demo", "color", "feasible").alpha.low == 0.3


def test_compel_weights_the_value_and_passes_no_negative_unless_written(editors):  # noqa: F811
    sdxl, sd2 = editors.inpaint, editors.text2image
    plain = steps.prompt_inputs(sdxl, ["a photo of a (red)1.0 cat"], [""], "compel")
    weighted = steps.prompt_inputs(sdxl, ["a photo of a (red)1.5 cat"], [""], "compel")
    assert plain["negative_prompt"] is None and "prompt" not in plain  # the reference passes embeddings only
    assert plain["prompt_embeds"].shape[:2] == (1, 77) and plain["pooled_prompt_embeds"].shape[0] == 1
    assert not torch.allclose(plain["prompt_embeds"], weighted["prompt_embeds"])  # the weight reaches the encoders
    batch = steps.prompt_inputs(
        sdxl, ["a (red)1.3 cat", "a photo of a (blue gray)1.3 cat, color change."], ["", ""], "compel"
    )
    assert batch["prompt_embeds"].shape[0] == batch["pooled_prompt_embeds"].shape[0] == 2  # one row per item
    swatch = steps.prompt_inputs(sd2, ["(red)1.3 texture"], ["text"], "compel")
    assert swatch["negative_prompt"] == ["text"] and "pooled_prompt_embeds" not in swatch  # SD 2.1: one encoder
    assert steps.prompt_inputs(sdxl, ["a cat"], [""], "none") == {"prompt": ["a cat"], "negative_prompt": [""]}
    assert steps.unweighted("(ruddy ticked coat)1.3") == "ruddy ticked coat" and steps.unweighted("blue") == "blue"


def test_canny_of_the_object_on_white_sees_no_background():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), dtype=bool)
    mask[20:44, 20:44] = True
    square = ops.WorkSquare(image, mask, image, mask, (64, 64))
    reference = np.asarray(steps.edges(square, Canny(source="object_on_white", low="auto", high=255)))[..., 0]
    ours = np.asarray(steps.edges(square, Canny(source="image", low=100, high=200)))[..., 0]
    far = ~ops.dilate(mask, 5, "square")
    assert not reference[far].any() and ours[far].any()  # only ours sees the old background's edges
    on_white = ops.object_on_white(image, mask)
    assert ops.median_low_threshold(on_white) == int(0.7 * 255)  # mostly white: 178, as the audit found
    assert (np.asarray(on_white)[~mask] == 255).all()


def test_swatch_crop_is_drawn_from_the_item_and_sharpening_is_the_references_kernel(tmp_path):
    swatch = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    centre = ops.fill_from_swatch(swatch, 32, 0.25)
    corner = ops.fill_from_swatch(swatch, 32, 0.25, (48, 0))
    assert centre.size == corner.size == (32, 32) and centre != corner
    with pytest.raises(ValueError, match="outside the 64x64 swatch"):
        ops.fill_from_swatch(swatch, 32, 0.25, (49, 0))
    flat = Image.new("RGB", (8, 8), (100, 100, 100))
    assert (
        np.asarray(ops.fill_from_swatch(flat, 8, 1.0, sharpen=True)).max() == 100
    )  # flat stays flat (kernel sums to 1)
    items = [_item(tmp_path, seed) for seed in range(20)]
    corners = {texture.crop_corner(item, (1024, 1024), 0.25) for item in items}
    assert len(corners) > 15 and all(0 <= x <= 768 and 0 <= y <= 768 for x, y in corners)
    assert texture.crop_corner(items[0], (1024, 1024), 0.25) == texture.crop_corner(items[0], (1024, 1024), 0.25)


def _item(tmp_path: Path, seed: int):
    from varireal.attributes.item import EditItem, Source

    return EditItem(
        "x_s0c0", Source("x", tmp_path / "x.png", "cat", 0, None), "texture", "feasible", "(fur)1.3", "soft", 0, 0, seed
    )


@pytest.mark.parametrize("attribute", ["color", "texture"])
def test_the_references_side_of_every_switch_runs_on_the_tiny_pipelines(tmp_path, editors, attribute, monkeypatch):  # noqa: F811
    settings = SETTINGS[attribute].model_copy(update={"prompt_weighting": "compel"})
    regen = settings.regenerate.model_copy(
        update={
            "ip_adapter_fill": 100,
            "controlnet_scale": 1.0,
            "negative_prompt": "",
            "canny": Canny(source="object_on_white", low="auto", high=255),
        }
    )
    refine = settings.refine.model_copy(update={"negative_prompt": ""})
    settings = settings.model_copy(update={"regenerate": regen, "refine": refine})
    if attribute == "texture":
        settings = settings.model_copy(update={"crop_position": "random", "sharpen": True, "crop_fraction": 0.25})
    seen: list[Image.Image] = []
    embed = steps.ip_adapter_embeds
    monkeypatch.setattr(
        steps,
        "ip_adapter_embeds",
        lambda pipe, images, guidance: seen.extend(images) or embed(pipe, images, guidance),
    )

    source = _write_source(tmp_path, "x", (50, 34), seed=5)
    image, mask = Image.open(source.path).convert("RGB"), Image.open(source.mask_path)
    edited = edit_image(
        image, mask, attribute, "(red)1.3", editors, settings, work_size=WORK, seed=0, description="shiny"
    )
    outside = np.asarray(mask) <= 127
    assert (np.asarray(edited.image)[outside] == np.asarray(image)[outside]).all()
    assert (np.asarray(edited.image)[~outside] != np.asarray(image)[~outside]).any()
    assert "(red)1.3" in edited.prompt  # compel reads the markup; the record shows it
    square = ops.work_square(image, mask, WORK)
    assert (np.asarray(seen[0])[~square.mask] == 100).all()  # the IP-Adapter's image: object on gray 100
    if attribute == "texture":
        assert len(edited.details["crop_corner"]) == 2


def test_the_reference_scheduler_is_dpm_solver_made_from_the_repos_own_and_default_restores_it():
    import types

    from diffusers import DPMSolverMultistepScheduler, PNDMScheduler

    from varireal.attributes.steps import use_scheduler

    repo = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    pipe = types.SimpleNamespace(scheduler=repo)
    use_scheduler(pipe, "dpm_solver_multistep")
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.beta_end == 0.012 and pipe.scheduler.config.beta_schedule == "scaled_linear"
    use_scheduler(pipe, "default")
    assert pipe.scheduler is repo
