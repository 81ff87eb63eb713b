"""The study's words, defined once: attributes, feasibilities, profiles and datasets.

Each is a Literal (what params validation and the command line accept) and the tuple of its
members (what loops iterate), read from the Literal so that the two cannot drift apart.
dvc.yaml cannot import them: tests/test_vocabulary.py checks its matrices against them.
"""

from __future__ import annotations

from typing import Literal, get_args

Attribute = Literal["background", "color", "texture"]
Feasibility = Literal["feasible", "infeasible"]  # what an edit set is
TrainFeasibility = Literal["feasible", "infeasible", "mixed"]  # what training reads; mixed: half of each
Profile = Literal["tiny", "paper"]  # tiny: offline CPU, random tiny models; paper: the paper's models
DatasetName = Literal["demo", "oxford_pets", "fgvc_aircraft", "stanford_cars"]

ATTRIBUTES: tuple[str, ...] = get_args(Attribute)
FEASIBILITIES: tuple[str, ...] = get_args(Feasibility)
TRAIN_FEASIBILITIES: tuple[str, ...] = get_args(TrainFeasibility)
PROFILES: tuple[str, ...] = get_args(Profile)
DATASETS: tuple[str, ...] = get_args(DatasetName)
