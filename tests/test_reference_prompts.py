"""Prompts, filter questions, the value draw and the filter's score beside the reference's own code.

For every entry of the reference's frozen value lists (its config files, read from the pinned commit), its
generators' `get_prompt` (the plain-text path: the texts Compel then encodes) and `get_vqa_question` build
the texts they would send; ours are filled from the paper profile's templates and the questions the prompts
stage reads from the same files. They must be equal, character for character.
"""

from __future__ import annotations

import random
import re
import string
import types
from functools import cache
from statistics import mean

import numpy as np
import pytest
from pipeline_repo import REPO
from reference_code import generator_class, load, logger, reference_file

from varireal.attributes.item import EditItem, Source
from varireal.edit.items import draw_values
from varireal.judge.questions import Candidate, Questions, questions_for
from varireal.judge.yes_no import reply_answer, score
from varireal.prompts.reference import read_questions, split_value
from varireal.prompts.schema import AttributeValue
from varireal.settings.whole import load_all_params

pytestmark = pytest.mark.reference

CONFIGS = {
    "background": ("VariReal/src/config/config_back.py", "FEASIBLE_BACK", "INFEASIBLE_BACK"),
    "color": ("VariReal/src/config/config_color.py", "FEASIBLE_COLOR", "INFEASIBLE_COLOR"),
    "texture": ("VariReal/src/config/config_texture.py", "FEASIBLE_TEXTURE", "INFEASIBLE_TEXTURE"),
}
GENERATORS = {
    "background": ("back_gen", "BackGen"),
    "color": ("color_gen", "ColorGen"),
    "texture": ("texture_gen", "TextureGen"),
}
PREFIXES = {"oxford_pets": "pet", "fgvc_aircraft": "aircraft", "cars": "car"}  # the reference's dataset keys
OURS = {"oxford_pets": "oxford_pets", "fgvc_aircraft": "fgvc_aircraft", "cars": "stanford_cars"}


def entries(attribute: str):
    """(reference dataset key, class or group, feasibility, entry) for every value of the reference's lists."""
    path, feasible, infeasible = CONFIGS[attribute]
    lists = load(path, [feasible, infeasible])
    for name, feasibility in ((feasible, "feasible"), (infeasible, "infeasible")):
        for dataset, node in lists[name].items():
            if dataset not in PREFIXES:
                continue
            groups = node.items() if isinstance(node, dict) else [("Abyssinian", node)]
            for group, values in groups:
                for entry in values:
                    yield dataset, group, feasibility, entry


@cache
def generator_type(attribute: str) -> type:
    file, cls = GENERATORS[attribute]
    return generator_class(
        [("VariReal/src/generator/base.py", "BaseGenerator"), (f"VariReal/src/generator/{file}.py", cls)],
        {"np": np, "random": random},
    )


def reference_generator(attribute: str, dataset: str, feasibility: str):
    generator = generator_type(attribute)()
    generator.dataset, generator.feasibility, generator.batch_size = dataset, feasibility == "feasible", 1
    generator.use_compel, generator.use_mask, generator.logger = False, True, logger()
    return generator


def our_item(attribute: str, dataset: str, class_name: str, entry: str) -> EditItem:
    source = Source("x", REPO / "x.png", class_name, 0, None)
    return EditItem(
        "x_s0c0",
        source,
        attribute,
        "feasible",
        **split_value(entry),
        slot=0,
        candidate=0,
        seed=0,
        prefix=PREFIXES[dataset],
    )


@pytest.mark.parametrize("attribute", ["background", "color", "texture"])
def test_every_prompt_and_question_of_the_reference_lists_is_the_references(attribute, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # BackGen.get_prompt makes a debug folder in the working directory
    file, _ = GENERATORS[attribute]
    path = f"VariReal/src/generator/{file}.py"
    questions = read_questions(reference_file(path), attribute, path, path)
    edit = load_all_params(REPO / "params.yaml", ["profile=paper"]).edit.pick("paper")
    methods = {(d, f): edit.method(OURS[d], attribute, f) for d in OURS for f in ("feasible", "infeasible")}
    checked = 0
    for dataset, group, feasibility, entry in entries(attribute):
        method = methods[dataset, feasibility]
        generator = reference_generator(attribute, dataset, feasibility)
        generator.general_class, generator.prompt_words = group, [entry]
        built = generator.get_prompt(0, group)
        item = our_item(attribute, dataset, group, entry)
        main = method.harmonize if attribute == "background" else method.refine
        assert built["prompts"] == [item.fill(main.prompt)], entry
        if attribute == "color":
            assert method.regenerate.prompt == method.refine.prompt  # stage 1's prompt, passed again
        if attribute == "background":
            assert built["preprocess_prompts"] == [item.fill(method.scene.prompt)], entry
        if attribute == "texture":
            assert built["preprocess_prompts"]["sd2_prompts"] == [item.fill(method.swatch.prompt)], entry

        asked = generator.get_vqa_question(built)
        candidate = Candidate("x", REPO, 0, 0, group, attribute, feasibility, item.value, item.description)
        ours = questions_for(
            candidate, Questions(questions.templates, questions.value_form, guarded=False), item.prefix
        )
        assert ours == [pair["question"] for pair in asked], entry
        expected = ("yes", "yes", "yes", "yes") if feasibility == "feasible" else ("yes", "yes", "no", "no")
        assert tuple(pair["answer"] for pair in asked) == expected
        checked += 1
    assert checked > 100


def test_the_value_draw_takes_the_references_positions():
    """Sampler.sample_words (generator/base.py:19-63) and ours, given the same index draws: 5 distinct list
    positions, or a short list whole and topped up with draws with replacement. (Its guard against repeating
    one of the last five samples never fires: a new Sampler is made for every real image, base.py:438.)"""
    sampler = load("VariReal/src/generator/base.py", ["Sampler"], {"random": None})["Sampler"]
    count = load_all_params(REPO / "params.yaml", ["profile=paper"]).edit.pick("paper").images_per_real
    for size in (3, 5, 18, 50):
        values = [f"(value {i})1.2" for i in range(size)] + ["(value 0)1.2"]  # a repeat, as its lists have
        for seed in range(5):
            rng = np.random.default_rng(seed)
            fake_random = types.SimpleNamespace(  # its random.sample / random.choices, from our index draws
                sample=lambda seq, k, r=rng: [seq[int(i)] for i in r.choice(len(seq), k, replace=False)],
                choices=lambda seq, k, r=rng: [seq[int(i)] for i in r.choice(len(seq), k, replace=True)],
            )
            sampler.__init__.__globals__["random"] = fake_random
            theirs = sampler(count, True).sample_words(values, [])
            ours = draw_values(
                [AttributeValue(value=v, description="") for v in values],
                count,
                "positions",
                np.random.default_rng(seed),
                "list",
            )
            assert [v.value for v in ours] == theirs


REPLIES = [
    "Yes",
    "No.",
    "yes, the cat is red",
    "No\nThe background is a beach.",
    " YES! ",
    "yes Answer: no",
    "Question: is it? Answer: yes",
    "The answer is yes",
    "I cannot tell",
    "",
    "no, it is not Explanation: the colour is blue",
]


def test_the_filter_reads_replies_and_scores_as_the_reference():
    found = load(
        "VariReal/src/vlm_filter/vqa_models.py",
        ["VQAModelFiltering.extract_answer_string", "VQAModelFiltering.compute_score"],
        {"re": re, "string": string, "mean": mean},
    )
    extract, compute = found["VQAModelFiltering.extract_answer_string"], found["VQAModelFiltering.compute_score"]
    for reply in REPLIES:
        theirs = extract(reply)
        # a reply outside yes/no went to a sentence encoder there (vqa_models.py:92-95); it matches nothing here
        assert reply_answer(reply) == (theirs if theirs in ("yes", "no") else ""), reply
    threshold = load_all_params(REPO / "params.yaml", ["profile=paper"]).filter.pick("paper").threshold
    expected = ["yes", "yes", "no", "no"]
    for answers in (["yes", "yes", "no", "no"], ["yes", "no", "no", "yes"], ["no", "no", "yes", "yes"], ["yes"] * 4):
        pairs = [{"question": f"q{i}", "choices": ["yes", "no"], "answer": e} for i, e in enumerate(expected)]
        tifa = compute(None, pairs, answers)["tifa_score"]
        assert score(answers, expected) == tifa
        assert (score(answers, expected) >= threshold) == (tifa >= 0.5)  # main_pipeline.py:233-234


def test_the_pets_dog_breeds_are_lower_case_here_and_capitalised_there():
    """The reference names the classes by its SUBSET_NAMES (Finetune/classify/util_data.py), which capitalise
    every breed; ours come from the image files, where only the cat breeds are capitalised, and
    `filter.<profile>.class_names: reference` (the paper profile's) asks the VLM with the reference's names. CLIP's tokenizers lower-case (SDXL, SD 2.1, the classifier) and the lists
    are matched case-folded, so only the VLM's questions differ, for the 25 dog breeds."""
    from varireal.datasets.oxford_pets import class_names_by_id

    rows = reference_file("Finetune/artifacts/oxford_pets/split_coop.csv").read_text().splitlines()[1:]
    folders = sorted({row.split(",")[1].split("/")[0] for row in rows if row})
    stems = [row.split(",")[1].split("/")[1].rsplit(".", 1)[0] for row in rows if row]
    ours = class_names_by_id([(stem, folders.index(stem.rsplit("_", 1)[0])) for stem in stems])
    theirs = load("Finetune/classify/util_data.py", ["SUBSET_NAMES"])["SUBSET_NAMES"]["oxford_pets"]
    assert {name.casefold() for name in ours.values()} == {name.casefold() for name in theirs}
    differ = sorted(name for name in ours.values() if name not in theirs)
    assert len(differ) == 25 and all(name == name.lower() for name in differ)  # the dogs: "american bulldog"
    # filter.paper.class_names: reference asks about each class by the reference's own name
    from varireal.prompts.reference import FetchedFile, reference_class_names

    path = "Finetune/classify/util_data.py"
    fetched = FetchedFile("class_names", path, "", reference_file(path), "")
    asked = reference_class_names("oxford_pets", "oxford_pets", list(ours.values()), fetched)
    assert sorted(asked.values()) == sorted(theirs) and asked["american bulldog"] == "American Bulldog"
