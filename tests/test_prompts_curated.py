"""Curated value lists: the demo file, precedence over an LLM, and errors that name the problem."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from varireal.prompts.build import build_attribute_lists, read_prompts, write_prompts
from varireal.prompts.curated import CuratedFileError
from varireal.settings.fetch import DEMO_CLASSES
from varireal.settings.prompts import PromptsParams

REPO = Path(__file__).resolve().parents[1]
DEMO_FILE = REPO / "varireal" / "curated" / "demo.yaml"
DEMO_COLORS = REPO / "varireal" / "curated" / "demo_colors.py"
ODD_NAMES = ["F-16A/B", "Ford F-150 Regular Cab 2012", 'the "quoted" one', "Cœur d'Alène ✈"]


def params(curated_file, **overrides) -> PromptsParams:
    settings = dict(min_values=2, max_values=6, max_attempts=2, seed=0, max_new_tokens=64, temperature=0.7, top_p=0.9)
    return PromptsParams(curated_file=str(curated_file), **{**settings, **overrides})


def pair(prefix: str) -> dict:
    return {
        "feasible": [{"value": f"{prefix} plausible {i}", "description": "real"} for i in range(3)],
        "infeasible": [{"value": f"{prefix} impossible {i}", "description": "not real"} for i in range(3)],
    }


def color_pair() -> dict:
    """Colour lists hold colour names: each must resolve to an RGB (CSS4 or XKCD names here)."""
    return {
        "feasible": [{"value": name, "description": "real"} for name in ("red", "olive green", "navy")],
        "infeasible": [{"value": name, "description": "not real"} for name in ("gold", "neon pink", "teal")],
    }


def curated(class_names) -> dict:
    return {
        "lists": {
            "background": pair("bg"),
            "texture": pair("tx"),
            "color": {name: color_pair() for name in class_names},
        }
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def never_called(*args, **kwargs):
    raise AssertionError("the LLM must not be asked when a curated file is given")


def test_the_demo_file_covers_every_demo_class_within_the_tiny_limits():
    document = build_attribute_lists(
        "demo",
        list(DEMO_CLASSES),
        params(DEMO_FILE, min_values=4, max_values=8, color_table=str(DEMO_COLORS)),
        None,
        {},
    )
    assert set(document["lists"]["color"]) == set(DEMO_CLASSES)
    ginger = document["lists"]["color"]["cat"]["feasible"][0]
    assert (ginger["value"], ginger["rgb"], ginger["rgb_source"]) == ("ginger", [176, 101, 0], "file")
    assert document["color_table"]["path"] == DEMO_COLORS.as_posix() and document["color_table"]["names"] == 38
    assert document["source"] == "curated" and document["attempts"] == []


def test_a_curated_file_wins_over_an_llm_and_records_no_llm(tmp_path):
    path = write_yaml(tmp_path / "lists.yaml", curated(["cat"]))
    llm_record = {"model_id": "some/llm", "revision": "abc"}
    document = build_attribute_lists(
        "demo", ["cat"], params(path), ("model", "tokenizer"), llm_record, generate=never_called
    )
    assert document["source"] == "curated"
    assert document["curated_file"] == str(path)
    assert document["llm"] is None and document["attempts"] == []
    colors = document["lists"]["color"]["cat"]["feasible"]
    assert [(e["value"], e["rgb"], e["rgb_source"]) for e in colors] == [
        ("red", [255, 0, 0], "css4"),
        ("olive green", [103, 122, 4], "xkcd"),
        ("navy", [0, 0, 128], "css4"),
    ]


def test_color_lists_of_classes_outside_the_dataset_are_ignored(tmp_path):
    path = write_yaml(tmp_path / "lists.yaml", curated(["cat", "dog", "unused"]))
    document = build_attribute_lists("demo", ["dog"], params(path), None, {})
    assert list(document["lists"]["color"]) == ["dog"]


def test_odd_class_names_are_document_keys_as_they_are(tmp_path):
    path = write_yaml(tmp_path / "lists.yaml", curated(ODD_NAMES))
    document = build_attribute_lists("aircraft", ODD_NAMES, params(path), None, {})
    write_prompts(tmp_path / "out.json", document)
    assert set(read_prompts(tmp_path / "out.json").lists["color"]) == set(ODD_NAMES)
    assert "Cœur d'Alène ✈" in (tmp_path / "out.json").read_text(encoding="utf-8")


def test_a_missing_class_is_named_with_a_close_match(tmp_path):
    path = write_yaml(tmp_path / "lists.yaml", curated(["cat", "F-16A-B"]))
    with pytest.raises(CuratedFileError) as raised:
        build_attribute_lists("aircraft", ["cat", "F-16A/B", "Ford F-150 Regular Cab 2012"], params(path), None, {})
    message = str(raised.value)
    assert str(path) in message and "2 class(es) of dataset 'aircraft'" in message
    assert "'F-16A/B' (did you mean 'F-16A-B'?)" in message and "'Ford F-150 Regular Cab 2012'" in message


def test_a_bad_list_is_named_by_file_list_key_and_entry(tmp_path):
    data = curated(["cat"])
    data["lists"]["color"]["cat"]["infeasible"][2]["value"] = "GOLD"
    data["lists"]["texture"]["infeasible"][0]["value"] = "TX plausible 1"
    path = write_yaml(tmp_path / "lists.yaml", data)
    with pytest.raises(CuratedFileError) as raised:
        build_attribute_lists("demo", ["cat"], params(path), None, {})
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid value lists")
    assert "list 'color/cat/infeasible': entry 3: value 'GOLD' duplicates entry 1" in message
    assert "list 'texture/infeasible': entry 1: value 'TX plausible 1' also appears in the feasible list" in message


def test_a_curated_list_longer_than_max_values_is_an_error_not_truncated(tmp_path):
    path = write_yaml(tmp_path / "lists.yaml", curated(["cat"]))
    with pytest.raises(CuratedFileError, match=r"list 'background/feasible': has 3 entries, more than max_values=2"):
        build_attribute_lists("demo", ["cat"], params(path, min_values=1, max_values=2), None, {})


def test_an_unquoted_yaml_boolean_asks_for_quotes(tmp_path):
    text = yaml.safe_dump(curated(["cat"]), sort_keys=False).replace("value: neon pink", "value: no", 1)
    path = tmp_path / "lists.yaml"
    path.write_text(text)
    with pytest.raises(
        CuratedFileError, match=r"color/cat/infeasible': entry 2: value must be a string, got bool False \(quote it"
    ):
        build_attribute_lists("demo", ["cat"], params(path), None, {})


def test_a_repeated_yaml_key_is_refused_instead_of_silently_dropped(tmp_path):
    text = yaml.safe_dump(curated(["cat"]), sort_keys=False)
    cat_block = text[text.index("    cat:") :]
    path = tmp_path / "lists.yaml"
    path.write_text(text + cat_block)
    with pytest.raises(
        CuratedFileError, match=r"lists.yaml: not valid YAML: .*duplicate key lists\.color\.cat \(first given on line"
    ):
        build_attribute_lists("demo", ["cat"], params(path), None, {})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d.update(dataset="oxford_pets"),
            "written for dataset 'oxford_pets', but the lists are requested for dataset 'demo'",
        ),
        (lambda d: d.update(notes="x"), "unknown top-level key(s) notes"),
        (
            lambda d: d["lists"].pop("texture"),
            "'lists' must have exactly the keys background, color, texture; got background, color",
        ),
        (
            lambda d: d["lists"]["color"]["cat"].pop("infeasible"),
            "list 'color/cat' must have exactly the keys feasible, infeasible",
        ),
        (lambda d: d.update(format_version=2), "format_version is 2"),
    ],
)
def test_layout_errors_name_the_file_and_the_place(tmp_path, change, expected):
    data = copy.deepcopy(curated(["cat"]))
    change(data)
    path = write_yaml(tmp_path / "lists.yaml", data)
    with pytest.raises(CuratedFileError) as raised:
        build_attribute_lists("demo", ["cat"], params(path), None, {})
    assert str(raised.value).startswith(str(path)) and expected in str(raised.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CuratedFileError, match=r"prompts.curated_file: .*nope.yaml does not exist"):
        build_attribute_lists("demo", ["cat"], params(tmp_path / "nope.yaml"), None, {})


def test_dataset_placeholder_picks_one_file_per_dataset(tmp_path):
    write_yaml(tmp_path / "pets.yaml", curated(["cat"]))
    document = build_attribute_lists("pets", ["cat"], params(tmp_path / "{dataset}.yaml"), None, {})
    assert document["curated_file"] == str(tmp_path / "pets.yaml")


def test_no_curated_file_and_no_llm_says_what_to_set():
    with pytest.raises(ValueError, match="prompts.source is 'llm' but no LLM was given"):
        build_attribute_lists(
            "demo", ["cat"], params("x").model_copy(update={"curated_file": None, "source": "llm"}), None, {}
        )


def test_a_colour_no_table_names_fails_naming_value_and_list(tmp_path):
    data = curated(["cat"])
    data["lists"]["color"]["cat"]["infeasible"][1]["value"] = "ruddy"
    path = write_yaml(tmp_path / "lists.yaml", data)
    with pytest.raises(
        ValueError, match=r"list 'color/cat/infeasible': colour value 'ruddy' .* nor a CSS4 or XKCD colour name"
    ):
        build_attribute_lists("demo", ["cat"], params(path), None, {})


def test_curated_builds_are_byte_identical(tmp_path):
    path = write_yaml(tmp_path / "lists.yaml", curated(ODD_NAMES))
    for name in ("a.json", "b.json"):
        write_prompts(tmp_path / name, build_attribute_lists("x", list(reversed(ODD_NAMES)), params(path), None, {}))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["format_version"] == 1
