"""The MLLM filter: neutral questions, yes/no scoring, per-slot selection, resume by shard, and what it writes."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydantic import ValidationError

from varireal.edit.store import MANIFEST_COLUMNS, edit_manifest
from varireal.filter import FILTER_COLUMNS, acceptance, accepted_edits, filter_set
from varireal.images import png_bytes
from varireal.io import read_table, write_table
from varireal.judge.questions import EXPECTED, Candidate, Questions, chat_prompt, questions_for
from varireal.judge.rule import SLOT_COLUMNS, select_slots
from varireal.judge.yes_no import DamagedCandidate, YesNoJudge, score
from varireal.models.vlm import build_tiny_vlm, load_vlm
from varireal.settings.filter import FilterParams
from varireal.shards import Sample, ShardStore, read_member, read_samples

TEMPLATES = {
    "attribute_present": "Is the {attribute} of the {prefix} {class_name} in this image {value}?",
    "attribute_present_rephrased": "Does this image show a {prefix} {class_name} with {value} as its {attribute}?",
    "possible_for_class": "Is it possible for a {prefix} {class_name} to have {value} as its {attribute}?",
    "exists_in_reality": "Could this image of a {prefix} {class_name} exist in reality?",
}
SETTINGS = FilterParams(
    device="cpu",
    batch_size=2,
    threshold=0.5,
    questions="ours",
    answer_instruction="Answer yes or no.",
    show_answer=False,
    answer_from="yes_no_probability",
    max_new_tokens=8,
    accept_unfiltered_after=None,
    **TEMPLATES,
)


# --- params and questions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, message",
    [
        ("Is this {value} feasible?", "mentions feasibility"),
        ("Is this infeasible {value}?", "mentions feasibility"),
        ("Is {value} expected here? You should answer no.", "mentions feasibility or the expected answer"),
        ("Is the {colour} right?", "uses {colour}"),
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
    return Candidate("e1", Path("shards/edits-00000.tar"), 512, 100, "Abyssinian", "background", feasibility, value)


def test_questions_are_the_same_for_feasible_and_infeasible_edits():
    feasible = questions_for(_candidate("feasible"), Questions(SETTINGS.templates()), "pet")
    infeasible = questions_for(_candidate("infeasible"), Questions(SETTINGS.templates()), "pet")
    assert feasible == infeasible
    assert feasible[0] == "Is the background of the pet Abyssinian in this image deep sea?"
    assert questions_for(_candidate("feasible"), Questions(SETTINGS.templates()), "")[3] == (
        "Could this image of a Abyssinian exist in reality?"
    )
    for question in feasible:
        assert "feasib" not in question.lower() and "expected" not in question.lower()


def test_a_value_that_would_leak_the_feasibility_stops_before_any_model_call():
    with pytest.raises(ValueError, match="e1: question .* names the feasibility"):
        questions_for(_candidate("infeasible", value="an infeasible sky"), Questions(SETTINGS.templates()), "")


def test_prompt_holds_one_image_the_question_and_the_instruction_but_no_expected_answer(vlm):
    question = questions_for(_candidate("infeasible"), Questions(SETTINGS.templates()), "pet")[2]
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
            ("a", 0, 1, 0.75),
            ("a", 0, 0, 1.0),
            ("a", 1, 2, 0.75),
            ("a", 1, 1, 0.75),
            ("a", 1, 0, 0.5),
            ("b", 0, 0, 0.25),
            ("b", 0, 1, 0.0),
            ("b", 1, 0, None),
        ],
        columns=["source_id", "slot", "candidate", "score"],
    )
    table["edit_id"] = [f"{s}-{slot}-{c}" for s, slot, c in zip(table.source_id, table.slot, table.candidate)]
    accepted_by, slots = select_slots(table, threshold=0.5)
    assert sorted(table.loc[accepted_by != "", "edit_id"]) == ["a-0-0", "a-1-1"] and set(accepted_by) == {"", "score"}
    assert list(slots.columns) == SLOT_COLUMNS
    by_slot = slots.set_index(["source_id", "slot"])
    assert by_slot.loc[("a", 1), "status"] == "accepted" and by_slot.loc[("a", 1), "best_score"] == 0.75
    assert by_slot.loc[("b", 0), "status"] == "rejected" and by_slot.loc[("b", 0), "edit_id"] == ""
    assert "best 0.25" in by_slot.loc[("b", 0), "reason"]
    assert by_slot.loc[("b", 1), "status"] == "rejected" and "no candidate" in by_slot.loc[("b", 1), "reason"]
    shuffled_accepted, _ = select_slots(table.sample(frac=1.0, random_state=3), threshold=0.5)
    assert sorted(table.loc[shuffled_accepted[shuffled_accepted != ""].index, "edit_id"]) == ["a-0-0", "a-1-1"]


# --- the whole filter on a small edit set -------------------------------------------------------------


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm") / "vlm"
    build_tiny_vlm(out, seed=0)
    return load_vlm(out, "cpu")


# (source, slot, candidate, status, red, blue). The stub judge answers p(yes) = red / 255, but for "could it
# exist in reality" 1 - blue / 255 when blue is set.
EDITS = [
    ("cat_1", 0, 0, "edited", 20, 0),
    ("cat_1", 0, 1, "edited", 230, 0),  # second candidate wins
    ("cat_1", 1, 0, "edited", 240, 0),
    ("cat_1", 1, 1, "edited", 250, 0),  # tie: first candidate
    ("cat_2", 0, 0, "edited", 10, 0),
    ("cat_2", 0, 1, "skipped", 0, 0),  # nothing passes: rejected
    ("cat_2", 1, 0, "edited", 5, 0),  # the slot's one candidate scores 0: rejected
    ("cat_3", 0, 0, "edited", 200, 255),
    ("cat_3", 0, 1, "edited", 30, 0),  # 0.75: kept at threshold 0.5, not at 1.0
]
SHARDS = {"cat_1": 0, "cat_2": 1, "cat_3": 2}  # one edit shard per source, as with shard_images=1


def _id(source: str, slot: int, candidate: int, feasibility: str = "feasible") -> str:
    return f"{source}-background-{feasibility[:3]}-s{slot}-c{candidate}"


def _png(red: int, blue: int = 0, tag: int = 0) -> bytes:
    pixels = np.zeros((40, 56, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = red, tag, blue  # tag: distinct bytes per edit
    return png_bytes(Image.fromarray(pixels))


def write_edit_set(edit_dir: Path, feasibility: str, images: dict[str, bytes] | None = None) -> Path:
    """An edit set as the edit stage writes it: shards/edits-NNNNN.tar (full records) and manifest.parquet."""
    per_shard: dict[int, list[Sample]] = {}
    for source, slot, candidate, status, red, blue in EDITS:
        edit_id = _id(source, slot, candidate, feasibility)
        record = {
            "edit_id": edit_id,
            "status": status,
            "reason": "" if status == "edited" else "empty mask",
            "source_id": source,
            "source_path": f"train/{source}.jpg",
            "class_name": "cat",
            "class_index": 0,
            "attribute": "background",
            "feasibility": feasibility,
            "value": "deep sea",
            "description": "dark blue water",
            "prompt": "a deep sea background",
            "negative_prompt": "blurry",
            "seed": 7,
            "slot": slot,
            "candidate": candidate,
            "mask_id": source,
            "rgb": "",
            "rgb_source": "",
            "settings": json.dumps({"steps": 2}),
            "models": json.dumps({"inpaint": "abc"}),
            "key": f"k-{edit_id}",
        }
        image = (images or {}).get(edit_id, _png(red, blue, tag=slot * 50 + candidate)) if status == "edited" else None
        per_shard.setdefault(SHARDS[source], []).append(Sample(edit_id, image, record))
    store = ShardStore(edit_dir, "edits")
    for index, samples in per_shard.items():
        store.write(index, samples)
    planned = [_id(s, slot, c, feasibility) for s, slot, c, *_ in EDITS]
    write_table(edit_dir / "manifest.parquet", edit_manifest(store, len(per_shard), planned))
    return edit_dir


class Calls:
    """Stands in for the VLM's forward pass (answers as EDITS says); counts prompts per pass; kill_at: raises at that pass."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.kill_at: int | None = None

    def __call__(self, judge, images, prompts):
        if self.kill_at is not None and len(self.batches) >= self.kill_at:
            raise KeyboardInterrupt("simulated kill")
        self.batches.append(len(prompts))
        answers = []
        for image, prompt in zip(images, prompts):
            red, _, blue = (int(v) for v in np.asarray(image)[0, 0])
            answers.append(1 - blue / 255 if blue and "exist in reality" in prompt else red / 255)
        return answers


@pytest.fixture()
def stub_judge(monkeypatch) -> Calls:
    calls = Calls()
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda judge, images, prompts: calls(judge, images, prompts))
    return calls


def _run(edit_dir: Path, out_dir: Path, vlm, settings=SETTINGS) -> pd.DataFrame:
    info = {"repo": "tiny", "revision": None, "fingerprint": "f" * 64}
    return filter_set(edit_dir, out_dir, lambda: vlm, settings, models_key="k", prefix="", vlm_info=info)


def _stats(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) per file: a rewrite, even with the same bytes, changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _files(out_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out_dir)): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}


def _members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


@pytest.fixture()
def edit_dir(tmp_path) -> Path:
    return write_edit_set(tmp_path / "edits" / "background" / "feasible", "feasible")


def test_filter_accepts_the_best_candidate_per_slot_and_shards_only_the_accepted_images(
    tmp_path, vlm, stub_judge, edit_dir
):
    out_dir = tmp_path / "synthetic" / "background" / "feasible"
    manifest = _run(edit_dir, out_dir, vlm)
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, *FILTER_COLUMNS]
    assert len(manifest) == len(EDITS)
    chosen = sorted(manifest.loc[manifest["accepted"], "edit_id"])
    assert chosen == [_id("cat_1", 0, 1), _id("cat_1", 1, 0), _id("cat_3", 0, 0)]
    assert sorted(p.name for p in out_dir.iterdir()) == ["answers", "manifest.parquet", "shards", "slots.csv"]
    assert sorted(p.name for p in (out_dir / "answers").iterdir()) == [f"answers-0000{i}.parquet" for i in range(3)]
    # one synthetic shard per edit shard, holding exactly its accepted edits (an empty one where none was)
    assert {p.name: _members(p) for p in sorted((out_dir / "shards").iterdir())} == {
        "synthetic-00000.tar": [f"{_id('cat_1', *sc)}.{ext}" for sc in ((0, 1), (1, 0)) for ext in ("png", "json")],
        "synthetic-00001.tar": [],
        "synthetic-00002.tar": [f"{_id('cat_3', 0, 0)}.{ext}" for ext in ("png", "json")],
    }
    for row in manifest.itertuples():
        if row.accepted:  # the manifest points at the very bytes the edit stage wrote
            image = read_member(out_dir / row.shard, row.offset, row.size)
            assert image == read_member(edit_dir / row.edit_shard, row.edit_offset, row.edit_size)
        else:
            assert pd.isna(row.shard) and (row.offset, row.size) == (-1, -1)
    assert read_table(out_dir / "manifest.parquet").equals(manifest)
    records = {s.key: s.record for s in read_samples(out_dir / "shards/synthetic-00000.tar")}
    kept = records[_id("cat_1", 0, 1)]  # provenance from the edit stage and the filter's answers
    assert kept["source_path"] == "train/cat_1.jpg" and kept["prompt"] == "a deep sea background" and kept["seed"] == 7
    assert kept["edit_shard"] == "shards/edits-00000.tar" and kept["score"] == 1.0 and kept["accepted"] is True
    assert [kept[f"q{i}_answer"] for i in range(1, 5)] == ["yes"] * 4 and kept["q1_p_yes"] == round(230 / 255, 6)
    assert json.loads(kept["vlm"])["fingerprint"] == "f" * 64

    by_id = manifest.set_index("edit_id")
    skipped = by_id.loc[_id("cat_2", 0, 1)]
    assert skipped["filter_status"] == "not_edited" and "empty mask" in skipped["filter_reason"]
    assert skipped["edit_offset"] == -1
    low = by_id.loc[_id("cat_1", 0, 0)]
    assert [low[f"q{i}_answer"] for i in range(1, 5)] == ["no"] * 4 and low["score"] == 0.0 and not low["passed"]
    assert by_id.loc[_id("cat_3", 0, 0), "score"] == 0.75  # "could it exist": no
    assert json.loads(manifest["vlm"].iloc[0])["fingerprint"] == "f" * 64
    slots = read_table(out_dir / "slots.csv")
    assert list(slots["status"]) == ["accepted", "accepted", "rejected", "rejected", "accepted"]
    assert "best 0.0" in slots["reason"][2] and "best 0.0" in slots["reason"][3]
    assert acceptance(out_dir)["acceptance_rate"] == 0.6
    assert sorted(accepted_edits(out_dir)["edit_id"]) == chosen
    assert stub_judge.batches == [8, 8, 8, 8]  # per edit shard, 2 candidates x 4 questions; a skipped one sends nothing


def test_infeasible_edits_expect_no_on_the_last_two_questions(tmp_path, vlm, stub_judge):
    manifest = _run(write_edit_set(tmp_path / "edits", "infeasible"), tmp_path / "out", vlm)
    high = manifest.set_index("edit_id").loc[_id("cat_1", 0, 1, "infeasible")]
    assert [high[f"q{i}_expected"] for i in range(1, 5)] == ["yes", "yes", "no", "no"]
    assert [high[f"q{i}_answer"] for i in range(1, 5)] == ["yes"] * 4 and high["score"] == 0.5
    assert high["q3_question"] == manifest.iloc[0]["q3_question"]  # same question text for every candidate


def test_a_rerun_asks_nothing_rewrites_no_shard_and_writes_the_same_bytes(tmp_path, vlm, stub_judge, edit_dir):
    out_dir = tmp_path / "out"
    _run(edit_dir, out_dir, vlm)
    first, answers, shards = _files(out_dir), _stats(out_dir / "answers"), _stats(out_dir / "shards")
    calls_before = len(stub_judge.batches)
    _run(edit_dir, out_dir, vlm)
    assert len(stub_judge.batches) == calls_before  # nothing asked again
    assert _stats(out_dir / "answers") == answers and _stats(out_dir / "shards") == shards
    assert _files(out_dir) == first


def test_changed_judge_code_asks_every_candidate_again(tmp_path, vlm, stub_judge, edit_dir, monkeypatch):
    out_dir = tmp_path / "out"
    _run(edit_dir, out_dir, vlm)
    asked = sum(stub_judge.batches)
    monkeypatch.setattr("varireal.judge.answers.answer_code", lambda: "the judge's code after a fix")
    _run(edit_dir, out_dir, vlm)
    assert sum(stub_judge.batches) == 2 * asked


def test_a_changed_edit_image_is_asked_again_alone_and_only_its_shards_are_rewritten(
    tmp_path, vlm, stub_judge, edit_dir
):
    out_dir = tmp_path / "out"
    _run(edit_dir, out_dir, vlm)
    answers, shards = _stats(out_dir / "answers"), _stats(out_dir / "shards")
    calls_before = len(stub_judge.batches)
    changed = _id("cat_2", 0, 0)
    write_edit_set(edit_dir, "feasible", images={changed: _png(250, tag=99)})  # a new edit run changed this image
    manifest = _run(edit_dir, out_dir, vlm)
    assert stub_judge.batches[calls_before:] == [8]  # its shard alone: cat_2 s0 c0 and s1 c0
    row = manifest.set_index("edit_id").loc[changed]
    assert row["accepted"] and read_member(out_dir / row["shard"], row["offset"], row["size"]) == _png(250, tag=99)
    after_answers, after_shards = _stats(out_dir / "answers"), _stats(out_dir / "shards")
    for name in ("answers-00000.parquet", "answers-00002.parquet"):
        assert after_answers[name] == answers[name]
    for name in ("synthetic-00000.tar", "synthetic-00002.tar"):
        assert after_shards[name] == shards[name]
    assert _members(out_dir / "shards/synthetic-00001.tar") == [f"{changed}.png", f"{changed}.json"]


def test_a_replaced_accepted_image_reaches_the_synthetic_shard_even_with_the_same_size_and_answers(
    tmp_path, vlm, stub_judge, edit_dir
):
    out_dir = tmp_path / "out"
    _run(edit_dir, out_dir, vlm)
    kept, new_png = _id("cat_1", 0, 1), _png(230, tag=230)
    assert len(new_png) == len(_png(230, tag=1)) and new_png != _png(230, tag=1)  # same red: same answers from the stub
    write_edit_set(edit_dir, "feasible", images={kept: new_png})
    row = _run(edit_dir, out_dir, vlm).set_index("edit_id").loc[kept]
    assert read_member(out_dir / row["shard"], row["offset"], row["size"]) == new_png


def test_a_killed_run_resumes_by_shard_and_ends_as_an_uninterrupted_one(tmp_path, vlm, stub_judge, edit_dir):
    out_dir = tmp_path / "out"
    stub_judge.kill_at = 2  # edit shard 0 (two passes) answered, killed on shard 1's
    with pytest.raises(KeyboardInterrupt):
        _run(edit_dir, out_dir, vlm)
    assert sorted(p.name for p in (out_dir / "answers").iterdir()) == ["answers-00000.parquet"]  # no partial file
    assert not (out_dir / "manifest.parquet").exists()
    finished = _stats(out_dir / "answers")
    stub_judge.kill_at = None
    _run(edit_dir, out_dir, vlm)
    assert stub_judge.batches == [8, 8, 8, 8]  # shards 1 and 2 only, after the kill
    assert _stats(out_dir / "answers")["answers-00000.parquet"] == finished["answers-00000.parquet"]
    _run(edit_dir, tmp_path / "whole", vlm)
    assert _files(out_dir) == _files(tmp_path / "whole")


def test_a_new_threshold_reselects_from_the_answers_without_asking_again(tmp_path, vlm, stub_judge, edit_dir):
    out_dir = tmp_path / "out"
    _run(edit_dir, out_dir, vlm)
    first, answers = _files(out_dir), _stats(out_dir / "answers")
    calls_before = len(stub_judge.batches)
    strict = FilterParams(**{**SETTINGS.model_dump(), "threshold": 1.0})
    manifest = _run(edit_dir, out_dir, vlm, strict)
    assert len(stub_judge.batches) == calls_before and _stats(out_dir / "answers") == answers
    assert set(manifest["threshold"]) == {1.0}
    assert sorted(manifest.loc[manifest["accepted"], "edit_id"]) == [_id("cat_1", 0, 1), _id("cat_1", 1, 0)]
    assert _members(out_dir / "shards/synthetic-00002.tar") == []  # cat_3's 0.75 no longer passes
    slots = read_table(out_dir / "slots.csv").set_index(["source_id", "slot"])
    assert slots.loc[("cat_3", 0), "status"] == "rejected" and "best 0.75" in slots.loc[("cat_3", 0), "reason"]
    _run(edit_dir, out_dir, vlm)  # and back: the first run's bytes
    assert len(stub_judge.batches) == calls_before and _files(out_dir) == first


def test_a_set_where_no_candidate_passes_rejects_every_slot(tmp_path, vlm, stub_judge):
    strict = FilterParams(**{**SETTINGS.model_dump(), "threshold": 1.0})  # infeasible scores here: 0.5 or 0.75
    out_dir = tmp_path / "out"
    manifest = _run(write_edit_set(tmp_path / "edits", "infeasible"), out_dir, vlm, strict)
    assert not manifest["accepted"].any() and manifest["shard"].isna().all()
    assert set(read_table(out_dir / "slots.csv")["status"]) == {"rejected"}
    assert all(_members(p) == [] for p in (out_dir / "shards").iterdir())
    assert accepted_edits(out_dir).empty and acceptance(out_dir)["acceptance_rate"] == 0.0


def test_a_damaged_edit_shard_stops_the_filter_naming_it_and_keeps_the_shards_answered(
    tmp_path, vlm, stub_judge, edit_dir
):
    shard = edit_dir / "shards/edits-00002.tar"
    shard.write_bytes(shard.read_bytes()[:600])  # cut inside cat_3's first image: a recorded candidate lost
    out_dir = tmp_path / "out"
    with pytest.raises(DamagedCandidate) as raised:
        _run(edit_dir, out_dir, vlm)
    message = str(raised.value)
    assert str(shard) in message and f"{_id('cat_3', 0, 0)}.png" in message and "truncated" in message
    assert f"dvc checkout {edit_dir}" in message
    assert not (out_dir / "manifest.parquet").exists()  # no set with the candidate quietly dropped
    assert sorted(p.name for p in (out_dir / "answers").iterdir()) == [
        "answers-00000.parquet",
        "answers-00001.parquet",
    ]  # the shards judged before it stay answered: a rerun after the repair asks only shard 2
    write_edit_set(edit_dir, "feasible")
    calls_before = len(stub_judge.batches)
    _run(edit_dir, out_dir, vlm)
    assert stub_judge.batches[calls_before:] == [8]


def test_files_of_an_older_layout_or_a_larger_set_are_removed(tmp_path, vlm, stub_judge, edit_dir):
    out_dir = tmp_path / "out"
    for leftover in (
        "images/a.png",
        "records/a.json",
        "manifest.csv",
        "answers/answers-00007.parquet",
        "answers/.tmp-answers-00000.parquet.x.parquet",
        "shards/synthetic-00005.tar",
        "shards/.tmp-synthetic-00000.tar.x.tar",
    ):
        (out_dir / leftover).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / leftover).write_bytes(b"from an older run")
    _run(edit_dir, out_dir, vlm)
    assert sorted(p.name for p in out_dir.iterdir()) == ["answers", "manifest.parquet", "shards", "slots.csv"]
    assert sorted(p.name for p in (out_dir / "answers").iterdir()) == [f"answers-0000{i}.parquet" for i in range(3)]
    assert sorted(p.name for p in (out_dir / "shards").iterdir()) == [f"synthetic-0000{i}.tar" for i in range(3)]


def test_a_resumed_run_equals_an_uninterrupted_one_with_the_real_tiny_vlm(tmp_path, vlm, edit_dir):
    whole = _run(edit_dir, tmp_path / "whole", vlm)
    resumed_dir = tmp_path / "resumed"
    _run(edit_dir, resumed_dir, vlm)
    for name in ("answers/answers-00001.parquet", "shards/synthetic-00001.tar", "manifest.parquet"):
        (resumed_dir / name).unlink()  # as if killed while on edit shard 1
    finished = _stats(resumed_dir / "answers")
    resumed = _run(edit_dir, resumed_dir, vlm)
    assert _stats(resumed_dir / "answers")["answers-00000.parquet"] == finished["answers-00000.parquet"]
    assert _files(tmp_path / "whole") == _files(resumed_dir)
    scored = whole[whole["filter_status"] == "scored"]
    p_yes = scored[[f"q{i}_p_yes" for i in range(1, 5)]]
    assert ((p_yes >= 0) & (p_yes <= 1)).all().all()
    assert resumed["accepted"].sum() == (read_table(tmp_path / "whole" / "slots.csv")["status"] == "accepted").sum()


def test_an_edit_manifest_without_the_expected_columns_is_named(tmp_path, vlm):
    edit_dir = tmp_path / "edits"
    write_table(edit_dir / "manifest.parquet", pd.DataFrame({"edit_id": ["a"], "shard": ["shards/edits-00000.tar"]}))
    with pytest.raises(ValueError, match=r"manifest.parquet: missing column\(s\) \['offset'"):
        _run(edit_dir, tmp_path / "out", vlm)
    with pytest.raises(FileNotFoundError, match="run the edit stage"):
        _run(tmp_path / "nowhere", tmp_path / "out", vlm)
