"""The reference's filter as switches: the leaked answer, the parsed reply, and accepting after two cycles.

Each switch is checked on and off through the same code the stages run (the tiny VLM's processor
builds the prompts); the accept rule is checked against a direct model of the reference's loop
(main_pipeline.py:192-239 at the pinned commit), for the filter stage and for early stop.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_filter import EDITS, SETTINGS, _id, _run, write_edit_set
from varireal.edit.plan import EditItem, Source
from varireal.filter.early import EarlyStopJudge
from varireal.filter.judge import YesNoJudge, reply_answer
from varireal.filter.questions import filter_prompt
from varireal.filter.select import Tried, decide_source, select_slots
from varireal.models.vlm import build_tiny_vlm, load_vlm

PAPER = SETTINGS.model_copy(update={"show_answer": True, "answer_from": "generated_text", "accept_unfiltered_after": 2})


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm") / "vlm"
    build_tiny_vlm(out, seed=0)
    return load_vlm(out, "cpu")


# --- show_answer ---------------------------------------------------------------------------------


def test_show_answer_sends_the_question_dict_with_its_expected_answer_as_the_reference_did(vlm):
    processor = vlm[0]
    question = "Is the blue gray possible for the pet Abyssinian to have?"
    leaked = filter_prompt(processor, question, "no", PAPER)
    assert (f"[INST] <image>\n{{'question': '{question}', 'choices': ['yes', 'no'], 'answer': 'no'}} [/INST]"
            in leaked)
    assert "Answer yes or no." not in leaked  # the dict's choices stood for the instruction
    # a question with an apostrophe is printed in double quotes, as Python's repr does
    assert """{'question': "Is the cat's fur red?", 'choices': ['yes', 'no'], 'answer': 'yes'}""" in \
        filter_prompt(processor, "Is the cat's fur red?", "yes", PAPER)
    neutral = filter_prompt(processor, question, "no", PAPER.model_copy(update={"show_answer": False}))
    assert f"{question} Answer yes or no. [/INST]" in neutral and "'answer'" not in neutral and "choices" not in neutral


def test_the_filter_shows_each_question_its_own_expected_answer_only_when_switched_on(tmp_path, vlm, monkeypatch):
    prompts: list[str] = []
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda judge, images, batch: prompts.extend(batch) or [0.9] * len(batch))
    edit_dir = write_edit_set(tmp_path / "edits", "infeasible")
    _run(edit_dir, tmp_path / "leaked", vlm, SETTINGS.model_copy(update={"show_answer": True}))
    edited = sum(1 for *_, status, red, _ in EDITS if status == "edited" and red >= 0)
    assert len(prompts) == 4 * edited
    assert [p.count("'answer': 'yes'") for p in prompts[:4]] == [1, 1, 0, 0]  # infeasible: yes, yes, no, no
    assert [p.count("'answer': 'no'") for p in prompts[:4]] == [0, 0, 1, 1]
    prompts.clear()
    _run(edit_dir, tmp_path / "neutral", vlm)
    assert len(prompts) == 4 * edited and not any("'answer'" in p for p in prompts)


# --- answer_from: generated_text -------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Yes", "yes"), ("No.", "no"), ("  yes\n", "yes"), ("Yes, the background is a beach.", "yes"),
        ("No\nThe cat is orange.", "no"), ("yes Explanation: it is blue", "yes"), ("no. Question: is it?", "no"),
        ("Answer: yes", ""),  # the text before the marker is empty
        ("The answer is yes.", ""), ("Maybe", ""), ("", ""), ("yes and no", ""), ("y e s", ""),
    ],
)
def test_a_reply_is_read_as_the_reference_read_it_and_anything_else_answers_nothing(reply, expected):
    assert reply_answer(reply) == expected


def test_generated_replies_are_parsed_scored_and_recorded(tmp_path, vlm, monkeypatch):
    def replies(judge, images, prompts, max_new_tokens):
        assert max_new_tokens == SETTINGS.max_new_tokens
        red = [int(np.asarray(image)[0, 0, 0]) for image in images]
        return ["Yes, it is." if r > 128 else "No" if r > 15 else "I cannot tell" for r in red]

    monkeypatch.setattr(YesNoJudge, "replies", replies)
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda *args: pytest.fail("generated_text must not read probabilities"))
    settings = SETTINGS.model_copy(update={"answer_from": "generated_text"})
    manifest = _run(write_edit_set(tmp_path / "edits", "feasible"), tmp_path / "out", vlm, settings).set_index("edit_id")
    high, low, garbled = (manifest.loc[_id(*key)] for key in (("cat_1", 0, 1), ("cat_1", 0, 0), ("cat_2", 0, 0)))
    assert [high[f"q{i}_answer"] for i in range(1, 5)] == ["yes"] * 4 and high["score"] == 1.0
    assert high["q1_reply"] == "Yes, it is." and pd.isna(high["q1_p_yes"])
    assert [low[f"q{i}_answer"] for i in range(1, 5)] == ["no"] * 4 and low["score"] == 0.0
    assert garbled["q2_reply"] == "I cannot tell" and garbled["q2_answer"] == "" and garbled["score"] == 0.0


def test_the_tiny_vlm_generates_replies_through_the_same_code(tmp_path, vlm):
    settings = SETTINGS.model_copy(update={"answer_from": "generated_text", "show_answer": True, "max_new_tokens": 2})
    manifest = _run(write_edit_set(tmp_path / "edits", "feasible"), tmp_path / "out", vlm, settings)
    scored = manifest[manifest["filter_status"] == "scored"]
    assert len(scored) == 7 and all(isinstance(scored.iloc[0][f"q{i}_reply"], str) for i in range(1, 5))
    assert set(scored[[f"q{i}_answer" for i in range(1, 5)]].to_numpy().ravel()) <= {"yes", "no", ""}
    for row in scored.itertuples():  # the answer agrees with the recorded reply
        assert all(getattr(row, f"q{i}_answer") == reply_answer(getattr(row, f"q{i}_reply")) for i in range(1, 5))


# --- accept_unfiltered_after ------------------------------------------------------------------------


def reference_loop(passes: dict[tuple[int, int], bool], per_real: int) -> tuple[list[tuple[int, int, str]], int]:
    """The reference's while loop for one real image: (saved (slot, try, why), cycles run)."""
    saved: list[tuple[int, int, str]] = []
    cycles, tries = 0, 0
    while len(saved) < per_real:
        cycles += 1
        slot = len(saved)
        if passes[(slot, tries)] or cycles > 2:
            saved.append((slot, tries, "score" if passes[(slot, tries)] else "after_tries"))
            tries = 0
        else:
            tries += 1
    return saved, cycles


def early_stop(passes: dict[tuple[int, int], bool], per_real: int, candidates: int, after: int | None):
    """Our rounds for one real image through decide_source: (accepted (slot, candidate, why), candidates made)."""
    made: set[tuple[int, int]] = set()
    while True:
        slots = [[Tried(c, f"{s}-{c}", (s, c) in made, (1.0 if passes[(s, c)] else 0.0) if (s, c) in made else None)
                  for c in range(candidates)] for s in range(per_real)]
        decisions = decide_source(slots, 0.5, after)
        wanted = {(s, d.next_candidate) for s, d in enumerate(decisions) if d.next_candidate is not None}
        if not wanted:
            break
        made |= wanted
    accepted = [(s, int(d.edit_id.split("-")[1]), d.accepted_by) for s, d in enumerate(decisions) if d.status == "accepted"]
    return accepted, made


def _patterns(count: int, per_real: int, candidates: int) -> list[dict[tuple[int, int], bool]]:
    draw = random.Random(0)
    return [{(s, c): draw.random() < 0.4 for s in range(per_real) for c in range(candidates)} for _ in range(count)]


@pytest.mark.parametrize("per_real", [1, 2, 5])
def test_accepting_after_two_cycles_saves_what_the_reference_saves_with_as_many_generations(per_real):
    for passes in _patterns(200, per_real, candidates=3):
        saved, cycles = reference_loop(passes, per_real)
        accepted, made = early_stop(passes, per_real, candidates=3, after=2)
        assert accepted == saved and len(made) == cycles
        assert len(accepted) == per_real and cycles <= per_real + 2  # every slot filled, at most two rejections


def test_with_fewer_candidates_than_cycles_a_slot_runs_out_and_the_next_is_accepted_after_tries():
    passes = {(s, c): False for s in range(2) for c in range(2)}
    accepted, made = early_stop(passes, per_real=2, candidates=2, after=2)
    assert accepted == [(1, 0, "after_tries")] and made == {(0, 0), (0, 1), (1, 0)}


def test_ours_rejects_a_slot_without_a_pass_and_accepts_nothing_by_default():
    passes = {(0, 0): False, (0, 1): False, (0, 2): False, (1, 0): False, (1, 1): True, (1, 2): True}
    accepted, made = early_stop(passes, per_real=2, candidates=3, after=None)
    assert accepted == [(1, 1, "score")] and made == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)}


def _manifest(passes: dict[tuple[int, int], bool], made: set[tuple[int, int]] | None, candidates: int) -> pd.DataFrame:
    rows = [("img", s, c, "edited" if made is None or (s, c) in made else "not_needed") for s, c in sorted(passes)]
    table = pd.DataFrame(rows, columns=["source_id", "slot", "candidate", "status"])
    table["edit_id"] = [f"{s}-{c}" for _, s, c, _ in rows]
    table["score"] = [(1.0 if passes[(s, c)] else 0.0) if status == "edited" else None for _, s, c, status in rows]
    return table


def test_the_filter_stage_accepts_what_early_stop_settled_with_or_without_it():
    for passes in _patterns(40, 5, candidates=3):
        accepted, made = early_stop(passes, 5, candidates=3, after=2)
        expected = {f"{s}-{c}": why for s, c, why in accepted}
        for table in (_manifest(passes, made, 3), _manifest(passes, None, 3)):  # early stop on, and off (all made)
            accepted_by, slots = select_slots(table, 0.5, 2)
            assert dict(zip(table.loc[accepted_by != "", "edit_id"], accepted_by[accepted_by != ""])) == expected
            assert list(slots["status"]) == ["accepted"] * 5
            assert list(slots["accepted_by"]) == [expected[e] for e in slots["edit_id"]]


def test_a_candidate_the_edit_stage_did_not_make_rejects_its_slot_and_the_later_ones_with_the_reason():
    passes = {(s, c): False for s in range(3) for c in range(3)}
    table = _manifest(passes, {(0, 0), (1, 0), (2, 0)}, 3)  # early stop under ours: a different set was made
    accepted_by, slots = select_slots(table, 0.5, 2)
    assert (accepted_by == "").all() and list(slots["status"]) == ["rejected"] * 3
    assert "candidate 1 was not made" in slots["reason"][0] and "earlier slot" in slots["reason"][1]


# --- early stop in the edit stage -----------------------------------------------------------------


def _items(sources: int, per_real: int, candidates: int) -> list[EditItem]:
    items = []
    for i in range(sources):
        source = Source(f"src{i}", Path(f"src{i}.jpg"), "cat", 0, None)
        items += [EditItem(f"src{i}-s{s}-c{c}", source, "color", "infeasible", "red", "", s, c, 0)
                  for s in range(per_real) for c in range(candidates)]
    return sorted(items, key=lambda item: item.edit_id)


def test_early_stop_asks_for_the_candidates_the_reference_would_have_made_round_by_round(vlm):
    judge = EarlyStopJudge(lambda: vlm, PAPER, "k", "")
    items = _items(sources=4, per_real=5, candidates=3)
    draw = random.Random(1)
    passes = {item.edit_id: draw.random() < 0.4 for item in items}
    infeasible_yes = {"status": "scored", **{f"q{i}_answer": a for i, a in enumerate(("yes", "yes", "no", "no"), 1)}}
    made: dict[str, dict] = {}
    rounds = []
    while True:
        wanted, settled = judge.next_round(items, made)
        if not wanted:
            break
        rounds.append(len(wanted))
        for item in wanted:
            answers = infeasible_yes if passes[item.edit_id] else {"status": "scored", **{
                f"q{i}_answer": a for i, a in enumerate(("no", "no", "yes", "yes"), 1)}}  # score 0
            made[item.edit_id] = {"feasibility": "infeasible", "answers": answers}
    assert rounds[0] == 4 * 5  # candidate 0 of every slot first, as every slot's first try is certain
    for i in range(4):
        mine = {k.split("-", 1)[1]: v for k, v in passes.items() if k.startswith(f"src{i}-")}
        saved, cycles = reference_loop({(s, c): mine[f"s{s}-c{c}"] for s in range(5) for c in range(3)}, 5)
        assert sum(e.startswith(f"src{i}-") for e in made) == cycles
        reasons = [settled[(f"src{i}", s)] for s, _, _ in saved]
        assert [("after 2 filtered cycles" in r, f"src{i}-s{s}-c{c}" in r) for r, (s, c, _) in zip(reasons, saved)] == \
            [(why == "after_tries", True) for _, _, why in saved]
