"""The reference's filter as switches: its questions, the leaked answer, the parsed reply, and accepting after two cycles.

Each switch is checked on and off through the same code the stages run (the tiny VLM's processor
builds the prompts); the accept rule is checked against a direct model of the reference's loop
(main_pipeline.py:192-239 at the pinned commit), for the filter stage and for early stop.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_filter import EDITS, SETTINGS, _id, _run, write_edit_set
from test_prompts_reference import FILES, PATHS, build, params, serve

from varireal.attributes.item import EditItem, Source
from varireal.filter import filter_set
from varireal.judge.early_stop import EarlyStopJudge
from varireal.judge.questions import Candidate, Questions, filter_prompt, question_set, questions_for
from varireal.judge.rule import Tried, decide_source, select_slots
from varireal.judge.yes_no import YesNoJudge, reply_answer
from varireal.models.vlm import build_tiny_vlm, load_vlm
from varireal.prompts.build import read_prompts, write_prompts
from varireal.prompts.reference import ReferenceFileError
from varireal.settings.prompts import PromptsParams
from varireal.shards import ShardStore

PAPER = SETTINGS.model_copy(update={"show_answer": True, "answer_from": "generated_text", "accept_unfiltered_after": 2})


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm") / "vlm"
    build_tiny_vlm(out, seed=0)
    return load_vlm(out, "cpu")


# --- questions: reference ------------------------------------------------------------------------
# Generator files in the reference's format (a get_vqa_question of f-string questions), our wording.


def _generator(name: str, value: str, questions: list[str]) -> str:
    entries = "\n".join(
        f"            {{'question': {q}, 'choices': ['yes', 'no'], 'answer': 'yes'}}," for q in questions
    )
    return f"""class {name}:
    def get_vqa_question(self, preprocess_prompts=None):
        {value} = preprocess_prompts.get('vqa_info')[0]
        current_class = preprocess_prompts.get('vqa_info')[1]
        vqa_answer_pairs = [
{entries}
        ]
        return vqa_answer_pairs
"""


GENERATORS = {
    "back_gen": _generator(
        "BackGen",
        "current_background",
        [
            "f'Is {current_background} behind the subject?'",
            "f'Does {current_background} fill the scene?'",
            "f'Is {current_background} a feasible {{place}} for the {current_class}?'",
            "'Could this photo be real?'",
        ],
    ),
    "color_gen": FILES["color_table"]
    + "\n\n"
    + _generator(
        "ColorQuestions",
        "current_color",
        [
            "f'Is the {current_class} {current_color}?'",
            "f'Is this a {current_color} {current_class}?'",
            "f'Can a {current_class} be {current_color}?'",
            "f'Is a {current_color} {current_class} feasibile?'",
        ],
    ),
    "texture_gen": _generator(
        "TextureGen",
        "current_texture",
        [
            "f'Is the {current_class} covered in {current_texture}?'",
            "f'Does it show {current_texture}?'",
            "f'Can a {current_class} have {current_texture}?'",
            "f'Is a {current_texture} {current_class} real?'",
        ],
    ),
}
GENERATOR_PATHS = {
    "back_gen": "VariReal/src/generator/back_gen.py",
    "color_gen": PATHS["color_table"],
    "texture_gen": "VariReal/src/generator/texture_gen.py",
}


def serve_with_questions(root: Path, http_server, **texts: str):
    """The prompts fixtures plus the three generator files; returns PromptsParams naming all of them."""
    texts = {**GENERATORS, **texts}
    server, hashes = serve(root, http_server, {"color_table": texts["color_gen"]})
    for role in ("back_gen", "texture_gen"):
        target = root / "0123456789abcdef0123456789abcdef01234567" / GENERATOR_PATHS[role]
        target.write_text(texts[role], encoding="utf-8")
        hashes[role] = hashlib.sha256(target.read_bytes()).hexdigest()
    hashes["color_gen"] = hashes["color_table"]
    settings = params(server, hashes).model_dump()
    settings["reference"]["files"].update(
        {role: {"path": GENERATOR_PATHS[role], "sha256": hashes[role]} for role in GENERATORS}
    )
    return PromptsParams.model_validate(settings)


@pytest.fixture
def reference_questions(tmp_path, http_server):
    document = build(
        "toy_pets", ["Abyssinian"], serve_with_questions(tmp_path / "site", http_server), tmp_path / "downloads"
    )
    write_prompts(tmp_path / "prompts.json", document)
    return read_prompts(tmp_path / "prompts.json").questions


def test_the_reference_questions_are_read_from_each_generator_into_templates_with_their_source(
    reference_questions, tmp_path
):
    background = reference_questions["background"]
    assert background.templates == (
        "Is {value} behind the subject?",
        "Does {value} fill the scene?",
        "Is {value} a feasible {{place}} for the {prefix} {class_name}?",
        "Could this photo be real?",
    )
    assert background.value_form == "before_colon" and background.source == "VariReal/src/generator/back_gen.py:2-11"
    assert reference_questions["color"].templates[3] == "Is a {value} {prefix} {class_name} feasibile?"
    assert reference_questions["color"].value_form == "value"
    assert reference_questions["texture"].value_form == "value_description"
    recorded = read_prompts(tmp_path / "prompts.json").reference["files"]
    assert (
        recorded["texture_gen"]["path"] == GENERATOR_PATHS["texture_gen"]
        and len(recorded["texture_gen"]["sha256"]) == 64
    )


@pytest.mark.parametrize(
    "question, refused",
    [
        ("f'Is {other} here?'", r"'\{other\}'"),
        ("f'Is {current_background.upper()} here?'", r"'\{current_background.upper\(\)\}'"),
        ("f'Is {current_background!r} here?'", r"'\{current_background!r\}'"),
        ("f'Is {current_background:>20} here?'", r"'\{current_background:>20\}'"),
        ("f\"Is {open(MARKER, 'w')} here?\"", r"\{open\("),
        ("'Is it ' + current_background", "must be a string or f-string, got BinOp"),
    ],
)
def test_a_question_interpolating_anything_else_is_refused_naming_file_and_line_and_never_run(
    tmp_path, http_server, question, refused
):
    marker = tmp_path / "was-executed"
    back_gen = _generator(
        "BackGen", "current_background", ["'A?'", "'B?'", question.replace("MARKER", repr(str(marker))), "'D?'"]
    )
    settings = serve_with_questions(tmp_path / "site", http_server, back_gen=back_gen)
    with pytest.raises(ReferenceFileError, match=r"back_gen.py \(http://.*\):8: .*" + refused):
        build("toy_pets", ["Abyssinian"], settings, tmp_path / "downloads")
    assert not marker.exists()


def test_three_of_the_four_question_files_or_a_missing_question_is_refused(tmp_path, http_server):
    settings = serve_with_questions(
        tmp_path / "site",
        http_server,
        texture_gen=_generator("TextureGen", "current_texture", ["'A?'", "'B?'", "'C?'"]),
    )
    with pytest.raises(
        ReferenceFileError, match=r"texture_gen.py .*:2: get_vqa_question has 3 'question' entries; expected 4"
    ):
        build("toy_pets", ["Abyssinian"], settings, tmp_path / "downloads")
    files = {k: v for k, v in settings.reference.files.items() if k != "back_gen"}
    with pytest.raises(ValueError, match="not all of back_gen, color_gen, texture_gen"):
        type(settings.reference).model_validate({**settings.reference.model_dump(), "files": files})


REFERENCE = SETTINGS.model_copy(update={"questions": "reference"})


def test_the_reference_questions_are_filled_with_each_attributes_value_form_and_shown_as_written(reference_questions):
    def ask(attribute: str, value: str, description: str, prefix: str = "pet") -> list[str]:
        candidate = Candidate("e1", Path(""), 0, 1, "Abyssinian", attribute, "infeasible", value, description)
        return questions_for(candidate, question_set(REFERENCE, attribute, reference_questions, "prompts.json"), prefix)

    # background: the entry up to its first ':' (weight kept); "feasible" is the reference's word, kept
    assert ask("background", "(suburban backyard)1.2", "a lawn with a fence")[:3] == [
        "Is (suburban backyard)1.2 behind the subject?",
        "Does (suburban backyard)1.2 fill the scene?",
        "Is (suburban backyard)1.2 a feasible {place} for the pet Abyssinian?",
    ]
    assert ask("color", "(ruddy)1.3", "")[3] == "Is a (ruddy)1.3 pet Abyssinian feasibile?"  # the raw value
    assert ask("texture", "(tree bark)1.3", "deep rough furrows", prefix="")[
        0
    ] == (  # the whole entry; no prefix, one space
        "Is the Abyssinian covered in (tree bark)1.3: deep rough furrows?"
    )
    with pytest.raises(ValueError, match="e1: value and class .*infeasible sky.* names the feasibility"):
        ask("background", "(an infeasible sky)1.2", "")  # what fills the reference's texts is still guarded
    with pytest.raises(ValueError, match="filter.questions is 'reference' but prompts.json has no reference questions"):
        question_set(REFERENCE, "color", None, "prompts.json")
    ours = question_set(SETTINGS, "color", reference_questions, "prompts.json")
    assert ours == Questions(SETTINGS.templates())  # ours ignores the document


def test_the_filter_stage_asks_the_reference_questions_under_a_new_answer_key_and_ours_as_before(
    tmp_path, vlm, monkeypatch, reference_questions
):
    prompts: list[str] = []
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda judge, images, batch: prompts.extend(batch) or [0.9] * len(batch))
    edit_dir = write_edit_set(tmp_path / "edits", "infeasible")  # background "deep sea: dark blue water" of a cat
    asked = question_set(REFERENCE, "background", reference_questions, "prompts.json")
    info = {"repo": "tiny", "revision": None, "fingerprint": "f" * 64}
    theirs = filter_set(
        edit_dir, tmp_path / "theirs", lambda: vlm, REFERENCE, "k", prefix="pet", vlm_info=info, questions=asked
    )
    expected = [
        "Is deep sea behind the subject?",
        "Does deep sea fill the scene?",
        "Is deep sea a feasible {place} for the pet cat?",
        "Could this photo be real?",
    ]
    assert [any(f"{q} Answer yes or no." in p for p in prompts[:4]) for q in expected] == [True] * 4
    scored = theirs[theirs["filter_status"] == "scored"]
    assert list(scored.iloc[0][[f"q{i}_question" for i in range(1, 5)]]) == expected
    prompts.clear()
    ours = _run(edit_dir, tmp_path / "ours", vlm)
    assert prompts and not any("behind the subject" in p for p in prompts)
    assert ours.iloc[0]["q1_question"] == "Is the background of the cat in this image deep sea?"
    keys = ours.set_index("edit_id")["answer_key"], theirs.set_index("edit_id")["answer_key"]
    assert all(a != b for a, b in zip(*keys) if a)  # other questions: other answer keys
    with pytest.raises(ValueError, match="filter.questions='reference': filter_set needs the reference's questions"):
        _run(edit_dir, tmp_path / "missing", vlm, REFERENCE)


def test_early_stop_asks_the_reference_questions_as_the_filter_stage_does(
    tmp_path, vlm, monkeypatch, reference_questions
):
    prompts: list[str] = []
    monkeypatch.setattr(YesNoJudge, "p_yes", lambda judge, images, batch: prompts.extend(batch) or [0.9] * len(batch))
    samples = list(ShardStore(write_edit_set(tmp_path / "edits", "feasible"), "edits").samples(0).values())
    asked = question_set(REFERENCE, "background", reference_questions, "prompts.json")
    judge = EarlyStopJudge(lambda: vlm, REFERENCE, "k", "pet", asked)
    judge.answers(samples, {})
    assert any("Is deep sea a feasible {place} for the pet cat? Answer yes or no." in p for p in prompts)
    ours = EarlyStopJudge(lambda: vlm, SETTINGS, "k", "pet")
    assert (
        judge.key != ours.key
        and ours.key == EarlyStopJudge(lambda: vlm, SETTINGS, "k", "pet", Questions(SETTINGS.templates())).key
    )
    with pytest.raises(ValueError, match="early stop needs the reference's questions"):
        EarlyStopJudge(lambda: vlm, REFERENCE, "k", "pet")


# --- show_answer ---------------------------------------------------------------------------------


def test_show_answer_sends_the_question_dict_with_its_expected_answer_as_the_reference_did(vlm):
    processor = vlm[0]
    question = "Is the blue gray possible for the pet Abyssinian to have?"
    leaked = filter_prompt(processor, question, "no", PAPER)
    assert f"[INST] <image>\n{{'question': '{question}', 'choices': ['yes', 'no'], 'answer': 'no'}} [/INST]" in leaked
    assert "Answer yes or no." not in leaked  # the dict's choices stood for the instruction
    # a question with an apostrophe is printed in double quotes, as Python's repr does
    assert """{'question': "Is the cat's fur red?", 'choices': ['yes', 'no'], 'answer': 'yes'}""" in filter_prompt(
        processor, "Is the cat's fur red?", "yes", PAPER
    )
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
        ("Yes", "yes"),
        ("No.", "no"),
        ("  yes\n", "yes"),
        ("Yes, the background is a beach.", "yes"),
        ("No\nThe cat is orange.", "no"),
        ("yes Explanation: it is blue", "yes"),
        ("no. Question: is it?", "no"),
        ("Answer: yes", ""),  # the text before the marker is empty
        ("The answer is yes.", ""),
        ("Maybe", ""),
        ("", ""),
        ("yes and no", ""),
        ("y e s", ""),
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
    manifest = _run(write_edit_set(tmp_path / "edits", "feasible"), tmp_path / "out", vlm, settings).set_index(
        "edit_id"
    )
    high, low, garbled = (manifest.loc[_id(*key)] for key in (("cat_1", 0, 1), ("cat_1", 0, 0), ("cat_2", 0, 0)))
    assert [high[f"q{i}_answer"] for i in range(1, 5)] == ["yes"] * 4 and high["score"] == 1.0
    assert high["q1_reply"] == "Yes, it is." and pd.isna(high["q1_p_yes"])
    assert [low[f"q{i}_answer"] for i in range(1, 5)] == ["no"] * 4 and low["score"] == 0.0
    assert garbled["q2_reply"] == "I cannot tell" and garbled["q2_answer"] == "" and garbled["score"] == 0.0


def test_the_tiny_vlm_generates_replies_through_the_same_code(tmp_path, vlm):
    settings = SETTINGS.model_copy(update={"answer_from": "generated_text", "show_answer": True, "max_new_tokens": 2})
    manifest = _run(write_edit_set(tmp_path / "edits", "feasible"), tmp_path / "out", vlm, settings)
    scored = manifest[manifest["filter_status"] == "scored"]
    assert len(scored) == 8 and all(isinstance(scored.iloc[0][f"q{i}_reply"], str) for i in range(1, 5))
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
        slots = [
            [
                Tried(c, f"{s}-{c}", (s, c) in made, (1.0 if passes[(s, c)] else 0.0) if (s, c) in made else None)
                for c in range(candidates)
            ]
            for s in range(per_real)
        ]
        decisions = decide_source(slots, 0.5, after)
        wanted = {(s, d.next_candidate) for s, d in enumerate(decisions) if d.next_candidate is not None}
        if not wanted:
            break
        made |= wanted
    accepted = [
        (s, int(d.edit_id.split("-")[1]), d.accepted_by) for s, d in enumerate(decisions) if d.status == "accepted"
    ]
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
        items += [
            EditItem(f"src{i}-s{s}-c{c}", source, "color", "infeasible", "red", "", s, c, 0)
            for s in range(per_real)
            for c in range(candidates)
        ]
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
            answers = (
                infeasible_yes
                if passes[item.edit_id]
                else {"status": "scored", **{f"q{i}_answer": a for i, a in enumerate(("no", "no", "yes", "yes"), 1)}}
            )  # score 0
            made[item.edit_id] = {"feasibility": "infeasible", "answers": answers}
    assert rounds[0] == 4 * 5  # candidate 0 of every slot first, as every slot's first try is certain
    for i in range(4):
        mine = {k.split("-", 1)[1]: v for k, v in passes.items() if k.startswith(f"src{i}-")}
        saved, cycles = reference_loop({(s, c): mine[f"s{s}-c{c}"] for s in range(5) for c in range(3)}, 5)
        assert sum(e.startswith(f"src{i}-") for e in made) == cycles
        reasons = [settled[(f"src{i}", s)] for s, _, _ in saved]
        assert [("after 2 filtered cycles" in r, f"src{i}-s{s}-c{c}" in r) for r, (s, c, _) in zip(reasons, saved)] == [
            (why == "after_tries", True) for _, _, why in saved
        ]


def test_the_filter_stage_reads_the_questions_from_the_datasets_prompts_document_only_under_reference(
    tmp_path, monkeypatch, reference_questions
):
    from types import SimpleNamespace

    from stages.filter import asked_questions

    monkeypatch.chdir(tmp_path)  # the fixture wrote prompts.json here; the stage reads data/prompts/<dataset>.json
    stage_params = SimpleNamespace(dataset="toy_pets")
    assert asked_questions(stage_params, SETTINGS, "texture") == Questions(
        SETTINGS.templates()
    )  # ours: no document read
    with pytest.raises(FileNotFoundError):
        asked_questions(stage_params, REFERENCE, "texture")
    (tmp_path / "data" / "prompts").mkdir(parents=True)
    (tmp_path / "prompts.json").rename(tmp_path / "data" / "prompts" / "toy_pets.json")
    asked = asked_questions(stage_params, REFERENCE, "texture")
    assert asked.templates == reference_questions["texture"].templates and asked.value_form == "value_description"
    assert not asked.guarded and asked.source == "VariReal/src/generator/texture_gen.py:2-11"


def test_the_reference_names_the_class_as_it_wrote_it_and_without_its_names_the_switch_is_named():
    """filter.<profile>.class_names: reference asks about "American Bulldog" where our dataset says
    "american bulldog" (the prompts document maps one to the other); ours asks with the dataset's name."""
    names = {"american bulldog": "American Bulldog"}
    candidate = Candidate("x", Path("s.tar"), 0, 1, "american bulldog", "color", "feasible", "brindle")
    theirs = question_set(SETTINGS.model_copy(update={"class_names": "reference"}), "color", None, "p.json", names)
    ours = question_set(SETTINGS, "color", None, "p.json", names)
    assert "American Bulldog" in questions_for(candidate, theirs, "pet")[0]
    assert "american bulldog" in questions_for(candidate, ours, "pet")[0]
    with pytest.raises(ValueError, match=r"filter.class_names is 'reference' but p.json has no reference class names"):
        question_set(SETTINGS.model_copy(update={"class_names": "reference"}), "color", None, "p.json")
