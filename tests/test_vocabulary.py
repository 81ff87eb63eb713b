"""The study's words have one home (varireal.vocabulary); what cannot import it is checked against it."""

from __future__ import annotations

from pathlib import Path

import yaml

from varireal.params import read_raw
from varireal.vocabulary import ATTRIBUTES, DATASETS, FEASIBILITIES, PROFILES, TRAIN_FEASIBILITIES

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_builds_one_set_per_attribute_and_feasibility():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("edit", "filter"):
        assert stages[name]["matrix"] == {"attr": list(ATTRIBUTES), "feas": list(FEASIBILITIES)}, name
    assert stages["gallery"]["matrix"] == {"attr": list(ATTRIBUTES)}


def test_params_yaml_names_the_same_profiles_and_datasets():
    raw = read_raw(REPO / "params.yaml")
    assert raw["profile"] in PROFILES and raw["dataset"] in DATASETS
    assert raw["attr"] in ATTRIBUTES and raw["feas"] in TRAIN_FEASIBILITIES
    assert set(raw["datasets"]) == set(DATASETS)
    for section in ("models", "protocol", "masks", "prompts", "edit", "filter", "train", "evaluate"):
        assert set(PROFILES) <= set(raw[section]), section


def test_training_reads_each_edit_set_feasibility_and_their_mix():
    assert TRAIN_FEASIBILITIES == (*FEASIBILITIES, "mixed")
