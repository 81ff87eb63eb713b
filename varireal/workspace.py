"""Every path a stage reads or writes, relative to the repository root, named once.

dvc.yaml declares the same paths as deps and outs (tests/test_pipeline.py runs the pipeline and
checks each stage writes what it declares); the stages, the command line and the cost plan take
them from here.
"""

from __future__ import annotations

from pathlib import Path

DOWNLOADS = Path("data/downloads")  # fetch's verified downloads (a cache; no stage declares it as an output)
REAL = Path("data/real")
MODELS_LOCK = Path("data/models/lock.json")
MASKS = Path("data/masks")
PROMPTS = Path("data/prompts")
EDITS = Path("data/edits")
SYNTHETIC = Path("data/synthetic")
TRAIN = Path("data/train")
TRAIN_CHECKPOINTS = Path("data/checkpoints/train")  # resumable state: scratch, not a DVC output
MASKS_REPORT = Path("reports/masks.json")
FILTER_REPORTS = Path("reports/filter")
GALLERY = Path("reports/gallery")
TRAIN_REPORTS = Path("reports/train")
EVAL_REPORTS = Path("reports/eval")


def real_dir(dataset: str) -> Path:
    """data/real/<dataset>: train/val/test images, manifest.csv, classes.csv."""
    return REAL / dataset


def masks_dir(dataset: str) -> Path:
    return MASKS / dataset


def prompts_file(dataset: str) -> Path:
    return PROMPTS / f"{dataset}.json"


def edit_set_dir(attribute: str, feasibility: str) -> Path:
    """data/edits/<attribute>/<feasibility>: every candidate, shards + manifest.parquet."""
    return EDITS / attribute / feasibility


def synthetic_dir(attribute: str, feasibility: str) -> Path:
    """data/synthetic/<attribute>/<feasibility>: the accepted edits, shards + answers + manifest.parquet."""
    return SYNTHETIC / attribute / feasibility


def filter_report(attribute: str, feasibility: str) -> Path:
    return FILTER_REPORTS / f"{attribute}-{feasibility}.json"


def gallery_file(attribute: str) -> Path:
    return GALLERY / f"{attribute}.png"
