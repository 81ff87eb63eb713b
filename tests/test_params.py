"""params.yaml is validated before a stage does anything; errors name key, value and what is allowed."""

from pathlib import Path

import pytest
import yaml

from varireal.params import ParamsError, profiled_sections, read_raw
from varireal.settings.whole import Params, load_all_params

REPO = Path(__file__).resolve().parents[1]


def write_params(tmp_path: Path, edit) -> Path:
    params = read_raw(REPO / "params.yaml")
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_committed_params_are_valid_and_default_to_the_offline_profile():
    params = load_all_params(REPO / "params.yaml")
    assert params.profile == "tiny"
    assert params.dataset == "demo"


def test_both_profiles_define_every_stage_section():
    params = load_all_params(REPO / "params.yaml")
    for profile in ("tiny", "paper"):
        assert params.masks.pick(profile).work_size > 0
        assert params.prompts.pick(profile).max_attempts >= 1
    assert params.masks.pick("paper").work_size == 1024
    for section in (params.edit, params.filter, params.evaluate):
        assert section.pick("tiny") != section.pick("paper")


def test_study_knobs_of_train_apply_to_every_profile():
    train = load_all_params(REPO / "params.yaml").train
    assert {train.pick(profile, "demo").data for profile in ("tiny", "paper")} == {train.data}
    assert {train.pick(profile, "oxford_pets").seed for profile in ("tiny", "paper")} == {train.seed}
    assert train.pick("paper", "stanford_cars").lora.rank == 16 and train.pick("paper", "demo").lora.alpha == 32


def test_the_paper_profile_trains_as_the_reference_did():
    params = load_all_params(REPO / "params.yaml")
    cars = params.train.pick("paper", "stanford_cars")
    assert (cars.batches, cars.real_repeats, cars.batch_size) == ("pool", 5, 64)
    assert (cars.steps, cars.eval_every) == (78720, 656)  # bash_example_finetune_cars.sh:38-39
    assert (cars.lr, cars.min_lr, cars.warmup_fraction, cars.lambda_real) == (1e-4, 1e-8, 0.1, 0.5)
    assert params.protocol.pick("paper") == "paper" and params.protocol.pick("tiny") == "heldout_val"
    # Pets and Aircraft: 78,720 x N / 8,144 real train images (not published), eval every ~steps / 120
    for dataset, images in (("oxford_pets", 2944), ("fgvc_aircraft", 6667)):
        settings = params.train.pick("paper", dataset)
        assert abs(settings.steps - 78720 * images / 8144) < 10 and abs(settings.eval_every - settings.steps / 120) < 1
        assert (
            settings.model_copy(update={"steps": cars.steps, "eval_every": cars.eval_every}) == cars
        )  # nothing else differs
    tiny = params.train.pick("tiny", "demo")
    assert tiny.batches == "pool" and tiny.steps is not None  # the default run exercises both


def test_a_dataset_lists_only_its_training_differences_merged_key_by_key(tmp_path):
    def tune_cars(params):
        params["train"]["paper"]["datasets"]["stanford_cars"] = {"steps": 5, "augment": {"flip_p": 0.0}}

    train = load_all_params(write_params(tmp_path, tune_cars)).train
    cars, pets, block = train.pick("paper", "stanford_cars"), train.pick("paper", "oxford_pets"), train.paper
    assert cars.steps == 5 and cars.eval_every == block.eval_every  # eval_every: the block's, no longer Cars' own
    assert cars.augment == block.augment.model_copy(update={"flip_p": 0.0}) and pets.augment == block.augment
    assert train.pick("tiny", "fgvc_aircraft").steps is None  # a dataset without differences: the block


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p.update(profile="papr"), ["profile = 'papr'", "'tiny' or 'paper'"]),
        (lambda p: p.update(feas="sometimes"), ["feas = 'sometimes'", "'feasible'", "'infeasible'", "'mixed'"]),
        (lambda p: p.update(attr="shape"), ["attr = 'shape'", "'background'"]),
        (lambda p: p.update(dataset="imagenet"), ["dataset = 'imagenet'", "'oxford_pets'"]),
        (lambda p: p["masks"]["tiny"].update(batch_size=0), ["masks.tiny.batch_size = 0", "greater than 0"]),
        (lambda p: p["masks"]["paper"].update(box_treshold=0.4), ["masks.paper.box_treshold", "unknown key"]),
        (lambda p: p.pop("fetch"), ["fetch: required key is missing"]),
        (lambda p: p["train"].update(data="real_plus"), ["train.data = 'real_plus'", "'real_only'"]),
        (lambda p: p["train"]["tiny"].update(data="real_only"), ["train.tiny.data", "unknown key"]),
        (lambda p: p["train"]["cutmix_mixup"].update(mode=False), ["train.cutmix_mixup.mode = False", "'none'"]),
        (lambda p: p["masks"].update(box_treshold=0.4), ["masks.box_treshold", "unknown key"]),
        (lambda p: p["masks"].update(box_threshold=1.5), ["masks.box_threshold = 1.5", "less than or equal to 1"]),
        (
            lambda p: p["edit"]["paper"]["methods"]["color"]["refine"].update(prompt="a {colour} cat"),
            ["edit.paper.methods.color.refine.prompt", "{colour}", "{value}"],
        ),
        # a dataset's blocks are checked as strictly, and named by their full path
        (
            lambda p: p["edit"]["paper"]["datasets"]["stanford_cars"]["color"]["refine"].update(
                prompt="a {colour} car"
            ),
            ["edit.paper.datasets.stanford_cars.color.refine.prompt", "{colour}"],
        ),
        (
            lambda p: p["edit"]["paper"]["datasets"]["oxford_pets"]["color"]["refine"].update(strenght=0.3),
            ["edit.paper.datasets.oxford_pets.color.refine.strenght", "unknown key"],
        ),
        (  # a dataset's block is whole: it replaces the profile's `methods` block
            lambda p: p["edit"]["paper"]["datasets"]["oxford_pets"].update(color={"refine": {"strength": 0.3}}),
            ["edit.paper.datasets.oxford_pets.color.alpha: required key is missing"],
        ),
        (
            lambda p: p["edit"]["tiny"].update(datasets={"oxford_pet": {}}),
            ["edit.tiny.datasets.oxford_pet: unknown dataset", "oxford_pets"],
        ),
        (lambda p: p["train"].update(batches="pooled"), ["train.batches = 'pooled'", "'pool' or 'per_kind'"]),
        (
            lambda p: p["train"]["tiny"].update(real_repeats=0),
            ["train.tiny.real_repeats = 0", "greater than or equal to 1"],
        ),
        (lambda p: p["train"].update(steps=0), ["train.steps = 0", "greater than 0"]),
        (lambda p: p["train"]["paper"].update(min_lr=0.1), ["min_lr=0.1 is above lr=0.0001"]),
        (lambda p: p["train"]["tiny"].update(lr=float("inf")), ["train.tiny.lr = inf", "finite number"]),
        (
            lambda p: p["edit"]["tiny"]["methods"]["color"]["refine"].update(strength=float("nan")),
            ["edit.tiny.methods.color.refine.strength = nan", "finite number"],
        ),
        (
            lambda p: p["train"]["tiny"].update(template="a photo of a {prefix}"),
            ["train.tiny.template", "lacks {class_name}"],
        ),
        (
            lambda p: p["train"]["paper"]["datasets"]["stanford_cars"].update(stepz=10),
            ["train.paper.datasets.stanford_cars.stepz", "unknown key"],
        ),
        (
            lambda p: p["train"]["paper"]["datasets"]["oxford_pets"].update(augment={"flip_p": 2}),
            ["train.paper.datasets.oxford_pets.augment.flip_p = 2", "less than or equal to 1"],
        ),
        (
            lambda p: p["train"]["tiny"]["datasets"].update(stanford_car={"steps": 3}),
            ["train.tiny.datasets.stanford_car: unknown dataset", "stanford_cars"],
        ),
        (
            lambda p: p["protocol"].update(paper="best_test"),
            ["protocol.paper = 'best_test'", "'paper', 'final' or 'heldout_val'"],
        ),
    ],
)
def test_bad_setting_names_key_value_and_allowed(tmp_path, edit, expected):
    path = write_params(tmp_path, edit)
    with pytest.raises(ParamsError) as caught:
        load_all_params(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_missing_and_unparsable_files_are_named(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_all_params(tmp_path / "params.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("profile: [tiny\n")
    with pytest.raises(ParamsError, match="broken.yaml: not valid YAML"):
        load_all_params(broken)


def test_a_datasets_block_replaces_the_profiles_for_that_dataset_only(tmp_path):
    def drop_cars_color(params):
        del params["edit"]["paper"]["datasets"]["stanford_cars"]["color"]

    edit = load_all_params(REPO / "params.yaml").edit.pick("paper")
    cars, demo = edit.method("stanford_cars", "color", "feasible"), edit.method("demo", "color", "feasible")
    assert (cars.refine.strength, cars.refine.guidance) == (0.85, 30.0) != (demo.refine.strength, demo.refine.guidance)
    assert demo == edit.methods.color.model_copy(update={"feasibility": {}})  # no block of its own: `methods`
    # without its colour block, Cars takes the profile's `methods` block, whole; its other blocks stay
    dropped = load_all_params(write_params(tmp_path, drop_cars_color)).edit.pick("paper")
    assert dropped.method("stanford_cars", "color", "feasible") == demo
    assert dropped.method("stanford_cars", "texture", "feasible") == edit.method("stanford_cars", "texture", "feasible")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.tiny.epochs", "true"),  # trained one epoch before it was refused
        ("train.steps", "true"),
        ("train.tiny.lr", "false"),
        ("train.augment.crop_scale", "[true, 1.0]"),
        ("train.tiny.lora.rank", "yes"),
        ("train.seed", "false"),
        ("masks.box_threshold", "on"),
        ("edit.tiny.images_per_real", "true"),
        ("edit.paper.methods.color.refine.strength", "true"),
        ("prompts.paper.min_values", "true"),
        ("filter.threshold", "true"),
        ("models.tiny.detector.seed", "false"),
        ("fetch.val_fraction", "true"),
        ("fetch.demo.train_per_class", "true"),
        ("gallery.rows", "true"),
        ("evaluate.tiny.batch_size", "true"),
    ],
)
def test_a_boolean_is_never_read_as_a_number(key, value):
    with pytest.raises(ParamsError) as caught:
        load_all_params(REPO / "params.yaml", [f"{key}={value}"])
    shown = f"{key}.0 = True" if value.startswith("[") else f"{key} = {value in ('true', 'yes', 'on')}"
    assert f"{shown}: a number is expected, not a boolean" in str(caught.value)


def test_a_boolean_in_a_datasets_edit_differences_is_named_by_its_full_path(tmp_path):
    def tune_cars(params):
        params["edit"]["paper"]["datasets"]["stanford_cars"] = {"color": {"refine": {"steps": True}}}

    with pytest.raises(
        ParamsError, match="edit.paper.datasets.stanford_cars.color.refine.steps = True: a number is expected"
    ):
        load_all_params(write_params(tmp_path, tune_cars))


def test_booleans_stay_booleans_and_numbers_numbers():
    params = load_all_params(REPO / "params.yaml", ["train.amp=false", "edit.early_stop=true", "train.tiny.epochs=1"])
    tiny = params.train.pick("tiny", "demo")
    assert tiny.amp is False and tiny.epochs == 1 and params.edit.pick("tiny").early_stop is True


def duplicated(tmp_path: Path, key: str, twice: str) -> tuple[Path, int]:
    """params.yaml with `twice` inserted after the line that starts with `key`, and that line's number."""
    lines = (REPO / "params.yaml").read_text().splitlines()
    first = next(number for number, line in enumerate(lines, 1) if line.startswith(key))
    path = tmp_path / "params.yaml"
    path.write_text("\n".join([*lines[:first], twice, *lines[first:]]) + "\n")
    return path, first


def test_a_key_given_twice_is_refused_naming_its_path_and_lines(tmp_path):
    path, first = duplicated(tmp_path, "  seed: 0", "  seed: 1")
    with pytest.raises(ParamsError) as caught:
        load_all_params(path)
    assert str(caught.value).startswith(
        f"{path}: line {first + 1}: duplicate key train.seed (first given on line {first})"
    )
    assert "DVC refuses the file" in str(caught.value)


def test_duplicates_are_refused_at_the_top_and_inside_lists(tmp_path):
    path, first = duplicated(tmp_path, "profile: tiny", "profile: paper")
    with pytest.raises(ParamsError, match=f"line {first + 1}: duplicate key profile "):
        load_all_params(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("a:\n  - {x: 1, y: 2}\n  - {x: 1, x: 2}\n")
    with pytest.raises(ParamsError, match=r"nested.yaml: line 3: duplicate key a\.1\.x \(first given on line 3\)"):
        load_all_params(nested)


def test_check_params_refuses_a_duplicate_key(tmp_path):
    from typer.testing import CliRunner

    from varireal.cli import app

    path, _ = duplicated(tmp_path, "  seed: 0", "  seed: 1")
    result = CliRunner().invoke(app, ["check-params", str(path)])
    assert result.exit_code == 2 and "duplicate key train.seed" in result.output


# --- each method setting stated once ---------------------------------------------------------------


def _same_in_both(tiny: dict, paper: dict, where: str) -> list[str]:
    found = []
    for key in sorted(set(tiny) & set(paper)):
        if tiny[key] == paper[key]:
            found.append(f"{where}.{key}")
        elif isinstance(tiny[key], dict) and isinstance(paper[key], dict):
            found += _same_in_both(tiny[key], paper[key], f"{where}.{key}")
    return found


def test_params_yaml_states_each_setting_once_and_the_blocks_only_what_differs():
    raw = read_raw(REPO / "params.yaml")
    blocks = [
        name for name, section in raw.items() if name in profiled_sections(Params) and isinstance(section["tiny"], dict)
    ]
    twice = [
        key for name in blocks if name != "models" for key in _same_in_both(raw[name]["tiny"], raw[name]["paper"], name)
    ]
    # each profile's edit methods are written out whole, so a value is found in one block (docs/profiles.md)
    twice = [key for key in twice if not key.startswith("edit.methods.")]
    assert not twice, f"the same value in the tiny and the paper block: state it once beside them: {twice}"


def test_a_shared_key_reaches_both_profiles_and_mappings_merge_key_by_key(tmp_path):
    params = load_all_params(REPO / "params.yaml", ["masks.box_threshold=0.35"])
    assert params.masks.tiny.box_threshold == params.masks.paper.box_threshold == 0.35
    # the shared canny settings and the paper block's steps meet in one method
    edit = load_all_params(REPO / "params.yaml").edit.pick("paper")
    assert edit.methods.color.regenerate.canny.high == 255 and edit.methods.color.regenerate.steps == 25
    # a setting lives in one place: also in a block, it is refused, naming both
    raw = read_raw(REPO / "params.yaml")
    raw["masks"]["paper"]["box_threshold"] = 0.45
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        ParamsError, match=r"masks\.paper\.box_threshold: masks\.box_threshold is already set for both profiles"
    ):
        load_all_params(path)


def test_a_wrong_shared_key_is_named_once_where_it_is_written(tmp_path):
    raw = read_raw(REPO / "params.yaml")
    raw["filter"]["threshold"] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError) as err:
        load_all_params(path)
    assert str(err.value).splitlines()[1:] == ["  filter.threshold = 2: Input should be less than or equal to 1"]
    with pytest.raises(ParamsError, match=r"masks\.tiny\.box_treshold is not a key"):
        load_all_params(REPO / "params.yaml", ["masks.tiny.box_treshold=0.3"])


def test_every_param_dvc_yaml_names_is_a_key_of_its_file_in_both_profiles():
    """DVC refuses to run a stage whose listed param is missing from its file, so each must be there
    whichever profile `${profile}` resolves to (and the dataset to any)."""
    from pipeline_repo import dvc_params

    files = {name: yaml.safe_load((REPO / name).read_text()) for name in ("params.yaml", "method.yaml")}
    missing = []
    for stage_name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        for entry in dvc_params(stage):
            file, _, key = entry.rpartition(":")
            for profile in ("tiny", "paper"):
                node = files[file or "params.yaml"]
                for part in key.replace("${profile}", profile).replace("${dataset}", "demo").split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node is None and not _is_null_leaf(files[file or "params.yaml"], key, profile):
                    missing.append(f"{stage_name}: {file or 'params.yaml'}:{key} ({profile})")
    assert not missing, missing


def _is_null_leaf(raw: dict, key: str, profile: str) -> bool:
    *parents, last = key.replace("${profile}", profile).replace("${dataset}", "demo").split(".")
    for part in parents:
        raw = raw.get(part, {}) if isinstance(raw, dict) else {}
    return isinstance(raw, dict) and last in raw
