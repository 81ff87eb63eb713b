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
Device = Literal["auto", "cpu", "cuda"]  # what params accept; varireal.devices also takes cuda:N and mps
# Which real images train and which checkpoint is kept (params.yaml `protocol.<profile>`):
#   paper        exactly the paper's training images (Pets' CoOp train, Aircraft's trainval, all Cars
#                train); train scores the TEST split and keeps the best test top-1, as the reference did:
#                optimistic, and said so in every report;
#   final        the same training images, the final checkpoint: nothing is chosen;
#   heldout_val  a per-class share of train is held out as val (or the official val is kept) and the
#                checkpoint with the best val top-1 is kept.
Protocol = Literal["paper", "final", "heldout_val"]

ATTRIBUTES: tuple[str, ...] = get_args(Attribute)
FEASIBILITIES: tuple[str, ...] = get_args(Feasibility)
TRAIN_FEASIBILITIES: tuple[str, ...] = get_args(TrainFeasibility)
PROFILES: tuple[str, ...] = get_args(Profile)
DATASETS: tuple[str, ...] = get_args(DatasetName)
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
PAPER_IMAGES: tuple[str, ...] = ("paper", "final")  # the protocols that train on the paper's images
# The top-level keys of params.yaml: the study's knobs, then one section per stage.
PARAMS_SECTIONS: tuple[str, ...] = (
    "profile",
    "dataset",
    "feas",
    "attr",
    "datasets",
    "protocol",
    "fetch",
    "models",
    "masks",
    "prompts",
    "edit",
    "filter",
    "gallery",
    "train",
    "evaluate",
    "study",
)
