"""The MLLM filter: neutral questions, yes/no scoring, per-slot selection, resume, and what it writes."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydantic import ValidationError

from varireal.filter import (
    EDIT_COLUMNS,
    EXPECTED,
    FILTER_COLUMNS,
    SLOT_COLUMNS,
    Candidate,
    FilterParams,
    YesNoJudge,
    accepted_edits,
    acceptance,
    chat_prompt,
    filter_set,
    questions_for,
    score,
    select_slots,
)
from varireal.io import read_table, save_image, write_table
from varireal.models.vlm import build_tiny_vlm, load_vlm

TEMPLATES = {
    "attribute_present": "Is the {attribute} of the {prefix} {class_name} in this image {value}?",
    "attribute_present_rephrased": "Does this image show a {prefix} {class_name} with {value} as its {attribute}?",
    "possible_for_class": "Is it possible for a {prefix} {class_name} to have {value} as its {attribute}?",
    "exists_in_reality": "Could this image of a {prefix} {class_name} exist in reality?",
}
SETTINGS = FilterParams(device="cpu", batch_size=2, threshold=0.5, answer_instruction="Answer yes or no.", **TEMPLATES)


# --- params and questions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, message",
    [
        ("Is this {value} feasible?", "mentions feasibility"),
        ("Is this infeasible {value}?", "mentions feasibility"),
        ("Is {value} expected here? You should answer no.", "mentions feasibility or the expected answer"),
        ("Is the {colour} right?", "unknown placeholder"),
        ("Is the {value right?", "not a valid format string"),
        ("Describe the {value}.", "ends with '?'"),
    ],
)
def test_question_templates_that_hint_at_the_answer_or_are_malformed_are_rejected(template, message):
    with pytest.raises(ValidationError, match=message):
        FilterParams(**{**SETTINGS.model_dump(), "possible_for_class": template})


def test_params_reject_unknown_keys_and_out_of_range_values():
    with pytest.raises(ValidationError, match="extra"):
        FilterParams(**SETTINGS.model_dump(), retries=2)
    with pytest.raises(ValidationError, match="threshold"):
        FilterParams(**{**SETTINGS.model_dump(), "threshold": 1.5})
    with pytest.raises(ValidationError, match="answer_instruction"):
        FilterParams(**{**SETTINGS.model_dump(), "answer_instruction": "Reply briefly."})


def _candidate(feasibility: str, value: str = "deep sea") -> Candidate:
    return Candidate("e1", Path("e1.png"), "Abyssinian", "background", feasibility, value)


def test_questions_are_the_same_for_feasible_and_infeasible_edits():
    feasible = questions_for(_candidate("feasible"), SETTINGS.templates(), "pet")
    infeasible = questions_for(_candidate("infeasible"), SETTINGS.templates(), "pet")
    assert feasible == infeasible
    assert feasible[0] == "Is the background of the pet Abyssinian in this image deep sea?"
    assert questions_for(_candidate("feasible"), SETTINGS.templates(), "")[3] == (
        "Could this image of a Abyssinian exist in reality?"
    )
    for question in feasible:
        assert "feasib" not in question.lower() and "expected" not in question.lower()


def test_a_value_that_would_leak_the_feasibility_stops_before_any_model_call():
    with pytest.raises(ValueError, match="e1: question .* names the feasibility"):
        questions_for(_candidate("infeasible", value="an infeasible sky"), SETTINGS.templates(), "")


def test_prompt_holds_one_image_the_question_and_the_instruction_but_no_expected_answer(vlm):
    question = questions_for(_candidate("infeasible"), SETTINGS.templates(), "pet")[2]
    prompt = chat_prompt(vlm[0], question, SETTINGS.answer_instruction)
    assert prompt.count("<image>") == 1 and f"{question} Answer yes or no." in prompt
    assert "feasib" not in prompt.lower()
    assert not prompt.rstrip().lower().endswith(("yes", "no", "yes.", "no."))  # the answer is left to the model


# --- scoring and selection -----------------------------------------------------------------------


def test_score_is_the_fraction_of_answers_as_expected():
    assert score(["yes"] * 4, EXPECTED["feasible"]) == 1.0
    assert score(["yes", "yes", "no", "no"], EXPECTED["infeasible"]) == 1.0
    assert score(["yes"] * 4, EXPECTED["infeasible"]) == 0.5
    assert score(["no", "yes", "yes", "no"], EXPECTED["feasible"]) == 0.5
    assert score(["no"] * 4, EXPECTED["feasible"]) == 0.0


def test_each_slot_takes_its_best_candidate_at_threshold_ties_to_the_lowest_index():
    table = pd.DataFrame(
        [  # source, slot, candidate, score (rows deliberately out of order)
            ("a", 0, 1, 0.75), ("a", 0, 0, 1.0),
            ("a", 1, 2, 0.75), ("a", 1, 1, 0.75), ("a", 1, 0, 0.5),
            ("b", 0, 0, 0.25), ("b", 0, 1, 0.0),
            ("b", 1, 0, None),
        ],
        columns=["source_id", "slot", "candidate", "score"],
    )
    table["edit_id"] = [f"{s}-{slot}-{c}" for s, slot, c in zip(table.source_id, table.slot, table.candidate)]
    accepted, slots = select_slots(table, threshold=0.5)
    assert sorted(table.loc[accepted, "edit_id"]) == ["a-0-0", "a-1-1"]
    assert list(slots.columns) == SLOT_COLUMNS
    by_slot = slots.set_index(["source_id", "slot"])
    assert by_slot.loc[("a", 1), "status"] == "accepted" and by_slot.loc[("a", 1), "best_score"] == 0.75
    assert by_slot.loc[("b", 0), "status"] == "rejected" and by_slot.loc[("b", 0), "edit_id"] == ""
    assert "best 0.25" in by_slot.loc[("b", 0), "reason"]
    assert by_slot.loc[("b", 1), "status"] == "rejected" and "no candidate" in by_slot.loc[("b", 1), "reason"]
    shuffled_accepted, _ = select_slots(table.sample(frac=1.0, random_state=3), threshold=0.5)
    assert sorted(table.loc[shuffled_accepted[shuffled_accepted].index, "edit_id"]) == ["a-0-0", "a-1-1"]


# --- the whole filter on a small edit dir ----------------------------------------------------------


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm") / "vlm"
    build_tiny_vlm(out, seed=0)
    return load_vlm(out, "cpu")


# (source, slot, candidate, status, red): red / 255 is what the stub judge answers as p(yes).
EDITS = [
    ("cat_1", 0, 0, "edited", 20), ("cat_1", 0, 1, "edited", 230),  # second candidate wins
    ("cat_1", 1, 0, "edited", 240), ("cat_1", 1, 1, "edited", 250),  # tie: first candidate
    ("cat_2", 0, 0, "edited", 10), ("cat_2", 0, 1, "skipped", 0),  # nothing passes: rejected
    ("cat_2", 1, 0, "edited", -1),  # unreadable image: rejected with its reason
]


def _edit_dir(root: Path, feasibility: str) -> Path:
    edit_dir = root / "edits" / "background" / feasibility
    rows = []
    for source, slot, candidate, status, red in EDITS:
        edit_id = f"{source}-background-{feasibility[:3]}-s{slot}-c{candidate}"
        path = f"images/{edit_id}.png" if status == "edited" else ""  # as the edit stage writes skipped rows
        if status == "edited" and red >= 0:
            pixels = np.zeros((40, 56, 3), dtype=np.uint8)
            pixels[..., 0], pixels[..., 1] = red, slot * 50 + candidate  # distinct bytes per edit
            save_image(edit_dir / path, Image.fromarray(pixels))
        elif status == "edited":
            (edit_dir / "images").mkdir(parents=True, exist_ok=True)
            (edit_dir / path).write_bytes(b"not a png")
        rows.append({
            "edit_id": edit_id, "path": path, "status": status, "reason": "" if status == "edited" else "empty mask",
            "source_id": source, "source_path": f"train/{source}.jpg", "class_name": "cat", "class_index": 0,
            "attribute": "background", "feasibility": feasibility, "value": "deep sea",
            "description": "dark blue water", "prompt": "a deep sea background", "seed": 7, "slot": slot,
            "candidate": candidate, "mask_id": source, "settings": json.dumps({"steps": 2}),
            "models": json.dumps({"inpaint": "abc"}), "negative_prompt": "blurry",  # a column the filter passes on
        })
    write_table(edit_dir / "manifest.csv", pd.DataFrame(rows, columns=[*EDIT_COLUMNS, "negative_prompt"]))
    return edit_dir


class Calls:
    """Counts forward passes, answering p(yes) = red channel / 255 of each image."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, judge, images, prompts):
        self.batches.append(len(prompts))
        return [float(np.asarray(image)[0, 0, 0]) / 255 for image in images]


@pytest.fixture()
def stub_judge(monkeypatch) -> Calls:
    calls = Calls()
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda judge, images, prompts: calls(judge, images, prompts))
    return calls


def _run(edit_dir: Path, out_dir: Path, vlm, settings=SETTINGS) -> pd.DataFrame:
    info = {"repo": "tiny", "revision": None, "fingerprint": "f" * 64}
    return filter_set(edit_dir, out_dir, vlm, settings, models_key="k", prefix="", vlm_info=info)


def test_filter_accepts_the_best_candidate_per_slot_and_copies_only_accepted_images(tmp_path, vlm, stub_judge):
    edit_dir = _edit_dir(tmp_path, "feasible")
    out_dir = tmp_path / "synthetic" / "background" / "feasible"
    manifest = _run(edit_dir, out_dir, vlm)
    assert list(manifest.columns) == [*EDIT_COLUMNS, "negative_prompt", *FILTER_COLUMNS]
    assert len(manifest) == len(EDITS)
    chosen = sorted(manifest.loc[manifest["accepted"], "edit_id"])
    assert chosen == ["cat_1-background-fea-s0-c1", "cat_1-background-fea-s1-c0"]
    for row in manifest.itertuples():
        assert (out_dir / row.path).is_file() == bool(row.accepted)
        if row.accepted:
            assert (out_dir / row.path).read_bytes() == (edit_dir / row.edit_path).read_bytes()
    assert sorted(p.name for p in (out_dir / "images").iterdir()) == [f"{e}.png" for e in chosen]
    by_id = manifest.set_index("edit_id")
    unreadable = by_id.loc["cat_2-background-fea-s1-c0"]
    assert unreadable["filter_status"] == "unreadable" and "cannot decode" in unreadable["filter_reason"]
    assert not unreadable["accepted"] and pd.isna(unreadable["score"])
    skipped = by_id.loc["cat_2-background-fea-s0-c1"]
    assert skipped["filter_status"] == "not_edited" and "empty mask" in skipped["filter_reason"]
    low = by_id.loc["cat_1-background-fea-s0-c0"]
    assert [low[f"q{i}_answer"] for i in range(1, 5)] == ["no"] * 4 and low["score"] == 0.0 and not low["passed"]
    assert json.loads(manifest["vlm"].iloc[0])["fingerprint"] == "f" * 64
    slots = read_table(out_dir / "slots.csv")
    assert list(slots["status"]) == ["accepted", "accepted", "rejected", "rejected"]
    assert acceptance(out_dir)["acceptance_rate"] == 0.5 and acceptance(out_dir)["unreadable"] == 1
    assert sorted(accepted_edits(out_dir)["edit_id"]) == chosen
    assert stub_judge.batches == [8, 8, 4]  # batch_size 2 candidates x 4 questions; unreadable ones send nothing


def test_infeasible_edits_expect_no_on_the_last_two_questions(tmp_path, vlm, stub_judge):
    manifest = _run(_edit_dir(tmp_path, "infeasible"), tmp_path / "out", vlm)
    high = manifest.set_index("edit_id").loc["cat_1-background-inf-s0-c1"]
    assert [high[f"q{i}_expected"] for i in range(1, 5)] == ["yes", "yes", "no", "no"]
    assert [high[f"q{i}_answer"] for i in range(1, 5)] == ["yes"] * 4 and high["score"] == 0.5
    assert high["q3_question"] == manifest.iloc[0]["q3_question"]  # same question text for every candidate


def test_a_rerun_skips_finished_candidates_and_writes_the_same_bytes(tmp_path, vlm, stub_judge):
    edit_dir = _edit_dir(tmp_path, "feasible")
    out_dir = tmp_path / "out"
    _run(edit_dir, out_dir, vlm)
    first = (out_dir / "manifest.csv").read_bytes()
    calls_before = len(stub_judge.batches)
    _run(edit_dir, out_dir, vlm)
    assert len(stub_judge.batches) == calls_before  # nothing re-judged
    assert (out_dir / "manifest.csv").read_bytes() == first
    # A changed edit image redoes only its own batch.
    changed = edit_dir / "images" / "cat_2-background-fea-s0-c0.png"
    save_image(changed, Image.new("RGB", (40, 40), (250, 0, 0)))
    manifest = _run(edit_dir, out_dir, vlm)
    assert stub_judge.batches[calls_before:] == [4]  # batch [cat_2 s0 c0, cat_2 s1 c0 (unreadable)]
    assert manifest.set_index("edit_id").loc["cat_2-background-fea-s0-c0", "accepted"]


def test_a_new_threshold_reselects_from_the_records_without_rescoring(tmp_path, vlm, stub_judge):
    edit_dir = _edit_dir(tmp_path, "feasible")
    _run(edit_dir, tmp_path / "out", vlm)
    calls_before = len(stub_judge.batches)
    strict = FilterParams(**{**SETTINGS.model_dump(), "threshold": 1.0})
    manifest = _run(edit_dir, tmp_path / "out", vlm, strict)
    assert len(stub_judge.batches) == calls_before
    assert set(manifest["threshold"]) == {1.0}
    assert manifest["accepted"].sum() == 2  # both winners answered all four questions as expected


def test_a_resumed_run_equals_an_uninterrupted_one_with_the_real_tiny_vlm(tmp_path, vlm):
    edit_dir = _edit_dir(tmp_path, "feasible")
    whole = _run(edit_dir, tmp_path / "whole", vlm)
    _run(edit_dir, tmp_path / "resumed", vlm)
    (tmp_path / "resumed" / "records" / "cat_1-background-fea-s1-c1.json").unlink()  # as if killed mid-run
    resumed = _run(edit_dir, tmp_path / "resumed", vlm)
    assert (tmp_path / "whole" / "manifest.csv").read_bytes() == (tmp_path / "resumed" / "manifest.csv").read_bytes()
    scored = whole[whole["filter_status"] == "scored"]
    p_yes = scored[[f"q{i}_p_yes" for i in range(1, 5)]]
    assert ((p_yes >= 0) & (p_yes <= 1)).all().all()
    assert resumed["accepted"].sum() == (read_table(tmp_path / "whole" / "slots.csv")["status"] == "accepted").sum()


def test_an_edit_manifest_without_the_expected_columns_is_named(tmp_path, vlm):
    edit_dir = tmp_path / "edits"
    write_table(edit_dir / "manifest.csv", pd.DataFrame({"edit_id": ["a"], "path": ["images/a.png"]}))
    with pytest.raises(ValueError, match=r"manifest.csv: missing column\(s\) \['status'"):
        _run(edit_dir, tmp_path / "out", vlm)
    with pytest.raises(FileNotFoundError, match="run the edit stage"):
        _run(tmp_path / "nowhere", tmp_path / "out", vlm)
