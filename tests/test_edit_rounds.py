"""Early stop: candidates made in rounds, a slot stopping at its first passing one, and the filter reading the answers.

Stand-in pipelines (test_edit_set) make the pixels; the tiny VLM's processor and chat template
build the real prompts, and its forward pass is replaced by a rule on each image's pixels, so
some candidates pass and some fail.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_edit_methods import MODELS, SETTINGS, WORK, _write_source
from test_edit_set import _shard_files, _stats, stand_in
from test_filter import SETTINGS as FILTER_SETTINGS

from varireal.attributes.item import EditItem, Source
from varireal.attributes.registry import attribute_method
from varireal.edit.edit_set import run_edits
from varireal.filter import filter_set
from varireal.judge.early_stop import EarlyStopJudge
from varireal.judge.yes_no import YesNoJudge
from varireal.models.vlm import build_tiny_vlm, load_vlm
from varireal.seeding import item_seed
from varireal.shards import read_samples

CANDIDATES = 3


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm") / "vlm"
    build_tiny_vlm(out, seed=0)
    return load_vlm(out, "cpu")


class Answers:
    """The VLM's forward pass: all yes for an image whose pixel checksum is 0 mod `modulus`, else all no; prompts counted."""

    def __init__(self) -> None:
        self.prompts = 0
        self.modulus = 3

    def __call__(self, judge, images, prompts):
        self.prompts += len(prompts)
        return [0.9 if zlib.crc32(np.asarray(image).tobytes()) % self.modulus == 0 else 0.1 for image in images]


@pytest.fixture()
def answers(monkeypatch) -> Answers:
    stub = Answers()
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda judge, images, prompts: stub(judge, images, prompts))
    return stub


@pytest.fixture()
def sources(tmp_path) -> list[Source]:
    folder = tmp_path / "real"
    folder.mkdir()
    return [_write_source(folder, name, (40, 32), seed=i) for i, name in enumerate("abcd")]


def _items(sources: list[Source], values: tuple[str, ...] = ("beach", "forest")) -> list[EditItem]:
    return sorted(
        (
            EditItem(
                f"{s.id}_s{slot}c{c}",
                s,
                "background",
                "feasible",
                value,
                f"a {value}",
                slot,
                c,
                item_seed(0, s.id, "background", "feasible", slot, c),
            )
            for s in sources
            for slot, value in enumerate(values)
            for c in range(CANDIDATES)
        ),
        key=lambda item: item.edit_id,
    )


def _edit(items, out: Path, calls: list[str], judge=None, kill_at: int | None = None, batch_size: int = 1):
    return run_edits(
        attribute_method("background"),
        items,
        out,
        stand_in(calls, kill_at=kill_at),
        SETTINGS["background"],
        work_size=WORK,
        batch_size=batch_size,
        shard_images=2,
        models=MODELS,
        show_progress=False,
        judge=judge,
    )


def _judge(vlm, **changes) -> EarlyStopJudge:
    return EarlyStopJudge(lambda: vlm, FILTER_SETTINGS.model_copy(update=changes), "k", "")


def _records(out: Path) -> dict[str, dict]:
    return {s.key: s.record for path in sorted((out / "shards").iterdir()) for s in read_samples(path)}


def test_a_slot_stops_at_its_first_passing_candidate_and_the_filter_asks_nothing_again(tmp_path, sources, vlm, answers):
    calls: list[str] = []
    manifest = _edit(_items(sources), tmp_path / "edits", calls, judge=_judge(vlm))
    records = _records(tmp_path / "edits")
    first_pass: dict[tuple[str, int], int] = {}
    for (source, slot), group in manifest.groupby(["source_id", "slot"]):
        statuses = list(group.sort_values("candidate")["status"])
        passing = [
            all(records[e]["answers"][f"q{q}_answer"] == "yes" for q in range(1, 5))
            for e, s in zip(group["edit_id"], statuses)
            if s == "edited"
        ]
        made = passing.index(True) + 1 if True in passing else CANDIDATES  # up to and including the first pass
        assert statuses == ["edited"] * made + ["not_needed"] * (CANDIDATES - made)
        if True in passing:
            first_pass[(source, slot)] = made - 1
    assert {0} < set(first_pass.values()) and len(first_pass) < 8  # some slots retried, some passed later, some never
    generated = int((manifest["status"] == "edited").sum())
    assert len(calls) == 2 * generated and answers.prompts == 4 * generated  # each candidate edited and judged once
    left_out = manifest[manifest["status"] == "not_needed"]
    assert all(r.startswith("early stop: slot") for r in left_out["reason"]) and (left_out["offset"] == -1).all()

    def no_model():
        raise AssertionError("the filter loaded the VLM although every answer was recorded")

    filtered = filter_set(tmp_path / "edits", tmp_path / "synthetic", no_model, FILTER_SETTINGS, models_key="k")
    assert answers.prompts == 4 * generated  # nothing asked again
    accepted = filtered[filtered["accepted"]]
    assert sorted(zip(accepted["source_id"], accepted["slot"], accepted["candidate"])) == sorted(
        (s, slot, c) for (s, slot), c in first_pass.items()
    )
    slots = pd.read_csv(tmp_path / "synthetic" / "slots.csv")
    rejected = slots[slots["status"] == "rejected"]
    assert len(rejected) == 8 - len(first_pass) and (rejected["generated"] == CANDIDATES).all()
    judged = filtered[filtered["status"] == "edited"].set_index("edit_id")
    assert all(judged.at[e, "q3_p_yes"] == records[e]["answers"]["q3_p_yes"] for e in judged.index)
    assert set(filtered.loc[filtered["status"] == "not_needed", "filter_status"]) == {"not_needed"}


def test_a_killed_run_resumes_to_the_bytes_of_an_uninterrupted_one_and_a_rerun_is_a_no_op(
    tmp_path, sources, vlm, answers
):
    items = _items(sources)
    _edit(items, tmp_path / "whole", [], judge=_judge(vlm), batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        _edit(
            items, tmp_path / "out", [], judge=_judge(vlm), kill_at=5, batch_size=2
        )  # shard 0 done, shard 1 in round 0
    _edit(items, tmp_path / "out", [], judge=_judge(vlm), batch_size=2)
    assert _shard_files(tmp_path / "out") == _shard_files(tmp_path / "whole")
    assert (tmp_path / "out/manifest.parquet").read_bytes() == (tmp_path / "whole/manifest.parquet").read_bytes()
    before, asked, calls = _stats(tmp_path / "out"), answers.prompts, []
    _edit(items, tmp_path / "out", calls, judge=_judge(vlm), batch_size=2)
    assert calls == [] and answers.prompts == asked and _stats(tmp_path / "out") == before


def test_a_new_threshold_re_decides_from_the_recorded_answers_and_early_stop_off_fills_in_the_rest(
    tmp_path, sources, vlm, answers
):
    items, out = _items(sources), tmp_path / "edits"
    first = _edit(items, out, [], judge=_judge(vlm))
    asked, calls = answers.prompts, []
    _edit(items, out, calls, judge=_judge(vlm, threshold=1.0))  # all-yes still passes, all-no still fails
    assert calls == [] and answers.prompts == asked  # the images and answers are reused; only the stop key moves
    off = _edit(items, out, calls)
    assert len(calls) == 2 * int((first["status"] == "not_needed").sum())  # only the candidates left out are edited
    assert set(off["status"]) == {"edited"}
    assert not any("answers" in r or "early_stop" in r for r in _records(out).values())
    _edit(items, tmp_path / "fresh", [])
    assert _shard_files(out) == _shard_files(tmp_path / "fresh")


def test_a_fix_in_the_judges_code_re_asks_and_re_decides_without_editing_again(
    tmp_path, sources, vlm, answers, monkeypatch
):
    """The judge's code is in its answers' keys and in early stop's: a fix there asks again about every
    candidate made and re-decides which each slot needs; no candidate already made is edited again."""
    from varireal.judge import answers as answer_keys
    from varireal.judge import early_stop

    items, out = _items(sources), tmp_path / "edits"
    first = _edit(items, out, [], judge=_judge(vlm))
    asked, calls, old_key = answers.prompts, [], _judge(vlm).key
    monkeypatch.setattr(answer_keys, "answer_code", lambda: "the judge after a fix")
    monkeypatch.setattr(early_stop, "answer_code", lambda: "the judge after a fix")
    again = _edit(items, out, calls, judge=_judge(vlm))
    assert calls == []  # the same answers decide the same slots: nothing is edited again
    assert answers.prompts - asked == 4 * int((first["status"] == "edited").sum())  # every candidate re-asked
    assert list(again["status"]) == list(first["status"])
    assert {r["early_stop"] for r in _records(out).values()} == {_judge(vlm).key} != {old_key}  # the new key


def test_accepting_after_two_cycles_early_stop_and_the_filter_stage_save_what_the_reference_loop_saves(
    tmp_path, sources, vlm, answers
):
    from test_filter_reference import reference_loop

    rule = {"accept_unfiltered_after": 2}
    answers.modulus = 5  # fewer passes: some slots are accepted after tries before their last candidate
    manifest = _edit(_items(sources, ("beach", "forest", "desert")), tmp_path / "edits", [], judge=_judge(vlm, **rule))
    records = _records(tmp_path / "edits")

    def no_model():
        raise AssertionError("the filter loaded the VLM although every answer was recorded")

    filtered = filter_set(
        tmp_path / "edits", tmp_path / "synthetic", no_model, FILTER_SETTINGS.model_copy(update=rule), models_key="k"
    )
    for _source_id, rows in filtered.groupby("source_id"):
        made = rows[rows["status"] == "edited"]
        passes = {
            (r.slot, r.candidate): all(records[r.edit_id]["answers"][f"q{q}_answer"] == "yes" for q in range(1, 5))
            for r in made.itertuples()
        }  # a candidate the loop needs but early stop did not make: KeyError
        saved, cycles = reference_loop(passes, per_real=3)
        assert len(made) == cycles
        accepted = rows[rows["accepted"]].sort_values("slot")
        assert list(zip(accepted["slot"], accepted["candidate"], accepted["accepted_by"])) == saved
    assert {"score", "after_tries"} <= set(filtered["accepted_by"])  # both reasons occur in this set
    assert filtered["accepted"].sum() == 12  # every slot of every real image, as the reference saved all 5 of 5
    left_out = manifest[manifest["status"] == "not_needed"]
    after = filtered.loc[filtered["accepted_by"] == "after_tries", ["source_id", "slot", "edit_id"]]
    reasons = [
        (r, f"early stop: slot {row.slot} accepted {row.edit_id} after 2 filtered cycles of its real image")
        for row in after.itertuples()  # the edit stage says why it made no more candidates for that slot
        for r in left_out.loc[(left_out["source_id"] == row.source_id) & (left_out["slot"] == row.slot), "reason"]
    ]
    assert reasons and all(got == want for got, want in reasons)
