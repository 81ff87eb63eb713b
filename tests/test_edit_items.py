"""Edit plan and settings: distinct values per slot, seeds from what an item is, strict params."""

import random
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from varireal.attributes.item import Source
from varireal.attributes.step_settings import InpaintStep, Text2ImageStep
from varireal.edit.items import plan_edits, read_sources
from varireal.prompts.schema import PromptsDocument
from varireal.settings.edit import EditParams
from varireal.settings.whole import load_all_params

REPO = Path(__file__).resolve().parents[1]


def _values(prefix: str, count: int) -> list[dict]:
    return [{"value": f"{prefix} {i}", "description": f"looks like {prefix} {i}"} for i in range(count)]


def _colors(prefix: str, count: int) -> list[dict]:
    return [{**value, "rgb": (i, 0, 0), "rgb_source": "css4"} for i, value in enumerate(_values(prefix, count))]


def document(count: int = 6, value_draw: str = "distinct_values", **lists_override) -> PromptsDocument:
    lists = {"feasible": _values("ok", count), "infeasible": _values("odd", count)}
    colors = {"feasible": _colors("ok", count), "infeasible": _colors("odd", count)}
    return PromptsDocument.model_validate(
        {
            "format_version": 1,
            "dataset": "toy",
            "source": "curated",
            "curated_file": None,
            "llm": None,
            "attempts": [],
            "lists": {
                "background": lists,
                "texture": lists,
                "color": {"cat": colors, "cup": {"feasible": _colors("cup", count), "infeasible": _colors("x", count)}},
                **lists_override,
            },
            "value_draw": value_draw,
        }
    )


def sources(*ids: str) -> list[Source]:
    return [Source(i, Path(f"{i}.png"), "cat", 0, Path(f"m/{i}.png")) for i in ids]


def test_each_slot_of_an_image_gets_a_different_value_and_candidates_share_it():
    items = plan_edits(sources("a", "b", "c"), document(), "background", "feasible", 4, 2, seed=0)
    assert len(items) == 3 * 4 * 2
    for source_id in "abc":
        mine = [item for item in items if item.source.id == source_id]
        by_slot = {item.slot: item.value for item in mine if item.candidate == 0}
        assert len(set(by_slot.values())) == 4
        assert all(item.value == by_slot[item.slot] for item in mine)
    assert [item.edit_id for item in items] == sorted(item.edit_id for item in items)
    assert items[0].edit_id == "a_s0c0" and len({item.seed for item in items}) == len(items)


def test_seeds_and_values_depend_only_on_the_item_not_on_the_other_images():
    alone = {
        i.edit_id: (i.value, i.seed)
        for i in plan_edits(sources("b"), document(), "texture", "infeasible", 3, 2, seed=7)
    }
    crowd = {
        i.edit_id: (i.value, i.seed)
        for i in plan_edits(sources("c", "a", "b"), document(), "texture", "infeasible", 3, 2, seed=7)
    }
    assert all(crowd[edit_id] == alone[edit_id] for edit_id in alone)
    other_feas = {i.edit_id: i.seed for i in plan_edits(sources("b"), document(), "texture", "feasible", 3, 2, seed=7)}
    other_seed = {
        i.edit_id: i.seed for i in plan_edits(sources("b"), document(), "texture", "infeasible", 3, 2, seed=8)
    }
    assert all(other_feas[k] != alone[k][1] and other_seed[k] != alone[k][1] for k in alone)


def test_color_values_come_from_the_image_class_list():
    cup = [Source("u", Path("u.png"), "cup", 1, None)]
    items = plan_edits(cup, document(), "color", "feasible", 2, 1, seed=0)
    assert all(item.value.startswith("cup ") for item in items)


def test_a_list_shorter_than_the_slots_or_a_missing_class_is_an_error_naming_it():
    with pytest.raises(
        ValueError, match="background/feasible list for 'cat' has 2 distinct value.*value_draw: positions"
    ):
        plan_edits(sources("a"), document(2), "background", "feasible", 3, 1, seed=0)
    with pytest.raises(ValueError, match="no color list for class 'dog'"):
        plan_edits([Source("d", Path("d.png"), "dog", 2, None)], document(), "color", "feasible", 1, 1, seed=0)


def _texts(*values: str) -> list[dict]:
    return [{"value": value, "description": ""} for value in values]


def _slot_values(items) -> dict[str, list[str]]:
    by_source: dict[str, list[str]] = {}
    for item in sorted(items, key=lambda item: (item.source.id, item.slot)):
        if item.candidate == 0:
            by_source.setdefault(item.source.id, []).append(item.value)
    return by_source


def test_positions_draw_takes_distinct_positions_so_listed_repeats_may_repeat():
    """The reference (base.py Sampler): random.sample of 5 positions; Bombay's ['black'] x 5 gives black x 5."""
    repeats = {"feasible": _texts("black", "black", "black", "black", "black"), "infeasible": _texts(*"abcdefg")}
    doc = document(value_draw="positions", background=repeats)
    assert _slot_values(plan_edits(sources("a"), doc, "background", "feasible", 5, 1, seed=0)) == {"a": ["black"] * 5}
    picked = _slot_values(plan_edits(sources(*"abcdefgh"), doc, "background", "infeasible", 5, 1, seed=0))
    assert all(len(set(values)) == 5 for values in picked.values())  # distinct positions of distinct values
    assert len({tuple(values) for values in picked.values()}) > 1  # drawn per image, not one order for all


def test_positions_draw_uses_a_short_list_whole_then_draws_with_replacement():
    short = {"feasible": _texts("p", "q", "r", "s"), "infeasible": _texts("hot pink")}
    doc = document(value_draw="positions", background=short)
    for values in _slot_values(plan_edits(sources(*"abcd"), doc, "background", "feasible", 5, 1, seed=3)).values():
        assert values[:4] == ["p", "q", "r", "s"] and values[4] in "pqrs"
    assert _slot_values(plan_edits(sources("a"), doc, "background", "infeasible", 5, 2, seed=3)) == {
        "a": ["hot pink"] * 5
    }


def test_distinct_values_draw_skips_listed_repeats_and_refuses_too_few():
    repeats = {"feasible": _texts("a", "A ", "b", "c"), "infeasible": _texts("a", "a", "a", "b", "c")}
    doc = document(background=repeats)
    assert sorted(_slot_values(plan_edits(sources("x"), doc, "background", "feasible", 3, 1, seed=0))["x"]) == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(ValueError, match="infeasible list for 'cat' has 3 distinct value.*images_per_real=5"):
        plan_edits(sources("x"), doc, "background", "infeasible", 5, 1, seed=0)


def test_draws_are_seeded_per_item_not_by_python_random():
    doc = document(value_draw="positions")
    random.seed(1)
    first = _slot_values(plan_edits(sources("a", "b"), doc, "texture", "feasible", 5, 1, seed=4))
    random.seed(2)
    assert _slot_values(plan_edits(sources("b", "a"), doc, "texture", "feasible", 5, 1, seed=4)) == first
    assert _slot_values(plan_edits(sources("a", "b"), doc, "texture", "feasible", 5, 1, seed=5)) != first


def test_texture_lists_per_class_or_per_category_are_chosen_by_the_image_class():
    texture = {
        "feasible": {"cat": _texts("tabby fur"), "military": _texts("forest camo")},
        "infeasible": _texts("jelly"),
    }
    doc = document(value_draw="positions", texture=texture).model_copy(update={"categories": {"F-16A/B": "military"}})
    jet = [Source("j", Path("j.png"), "F-16A/B", 1, None)]
    assert _slot_values(plan_edits(sources("a"), doc, "texture", "feasible", 2, 1, seed=0)) == {"a": ["tabby fur"] * 2}
    assert _slot_values(plan_edits(jet, doc, "texture", "feasible", 2, 1, seed=0)) == {"j": ["forest camo"] * 2}
    assert _slot_values(plan_edits(jet, doc, "texture", "infeasible", 1, 1, seed=0)) == {"j": ["jelly"]}
    with pytest.raises(ValueError, match="none is for class 'dog' \\(lists: cat, military\\)"):
        plan_edits([Source("d", Path("d.png"), "dog", 2, None)], doc, "texture", "feasible", 1, 1, seed=0)


def test_color_items_carry_the_rgb_the_prompts_stage_resolved():
    [item] = plan_edits(sources("a"), document(1), "color", "infeasible", 1, 1, seed=0)
    assert (item.value, item.rgb, item.rgb_source) == ("odd 0", (0, 0, 0), "css4")
    stale = document(1, color={"cat": {"feasible": _values("ok", 1), "infeasible": _values("odd", 1)}})
    with pytest.raises(
        ValueError, match="color value\\(s\\) \\['ok 0'\\] of class 'cat' have no rgb.*rerun the prompts stage"
    ):
        plan_edits(sources("a"), stale, "color", "feasible", 1, 1, seed=0)


def test_prompt_templates_are_filled_and_single_spaced():
    [item] = plan_edits(sources("a"), document(1), "background", "feasible", 1, 1, seed=0, prefix="")
    assert item.fill("a {prefix} {class_name} on {value}") == "a cat on ok 0"


def test_read_sources_takes_the_train_split_and_says_why_a_mask_is_missing(tmp_path):
    real, masks = tmp_path / "real", tmp_path / "masks"
    real.mkdir(), masks.mkdir()
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "t"],
            "path": ["train/a.jpg", "train/b.jpg", "train/c.jpg", "test/t.jpg"],
            "class_name": ["cat"] * 4,
            "class_index": [0] * 4,
            "split": ["train", "train", "train", "test"],
            "source": ["x"] * 4,
        }
    ).to_csv(real / "manifest.csv", index=False)
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "mask_path": ["masks/a.png", ""],
            "status": ["detected", "unreadable"],
            "reason": ["", "truncated file"],
        }
    ).to_csv(masks / "manifest.csv", index=False)
    found = {source.id: source for source in read_sources(real, masks)}
    assert sorted(found) == ["a", "b", "c"]
    assert found["a"].mask_path == masks / "masks/a.png" and found["a"].path == real / "train/a.jpg"
    assert found["b"].mask_path is None and "unreadable (truncated file)" in found["b"].mask_problem
    assert found["c"].mask_path is None and "no mask row for c" in found["c"].mask_problem


def _step(**change) -> dict:
    return {"prompt": "a {value}", "negative_prompt": "", "steps": 2, "guidance": 1.0, **change}


def test_settings_reject_unknown_keys_placeholders_and_zero_step_inpainting():
    with pytest.raises(ValidationError, match="uses \\{colour\\}"):
        Text2ImageStep(**_step(prompt="a {colour} cat"), size=64)
    with pytest.raises(ValidationError, match="multiple of 8"):
        Text2ImageStep(**_step(), size=60)
    with pytest.raises(ValidationError, match="runs no denoising step"):
        InpaintStep(**_step(steps=2), strength=0.3)
    with pytest.raises(ValidationError, match="Extra inputs"):
        EditParams(
            device="cpu",
            batch_size=1,
            work_size=64,
            images_per_real=1,
            candidates_per_slot=1,
            seed=0,
            shard_images=1,
            methods={},
            steps=3,
        )
    params = load_all_params(REPO / "params.yaml").edit.pick("tiny")
    with pytest.raises(ValueError, match="attribute='shape': expected one of background, color, texture"):
        params.method("demo", "shape", "feasible")


def test_the_stage_names_the_allowed_attributes_and_feasibilities():
    from stages.edit import main

    with pytest.raises(
        ValueError,
        match=r"got colour mixed; usage: python -m stages.edit <background\|color\|texture> <feasible\|infeasible>",
    ):
        main(["colour", "mixed"])
