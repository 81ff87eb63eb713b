"""All of params.yaml at once, for `varireal check-params`, `varireal settings` and the cost plan.

A stage validates only the sections it reads (its schema in this package); this module puts every
section together, so one command checks everything before a long run.
"""

from __future__ import annotations

from pathlib import Path

from varireal.params import load_params
from varireal.settings.base import PerProfile, ProtocolSection, Study
from varireal.settings.edit import EditParams
from varireal.settings.evaluate import EvaluateParams
from varireal.settings.fetch import FetchParams
from varireal.settings.filter import FilterParams
from varireal.settings.gallery import GalleryParams
from varireal.settings.masks import MasksParams
from varireal.settings.models import ModelsParams
from varireal.settings.prompts import PromptsParams
from varireal.settings.study import StudySettings
from varireal.settings.train import TrainSection


class Params(Study):
    protocol: ProtocolSection
    fetch: FetchParams
    models: ModelsParams
    masks: PerProfile[MasksParams]
    prompts: PerProfile[PromptsParams]
    edit: PerProfile[EditParams]
    filter: PerProfile[FilterParams]
    gallery: GalleryParams
    train: TrainSection
    evaluate: PerProfile[EvaluateParams]
    study: StudySettings = StudySettings()  # how `varireal study` judges the runs; no stage reads it


def load_all_params(path: str | Path = "params.yaml", overrides: list[str] = ()) -> Params:
    """Every section of params.yaml, validated."""
    return load_params(Params, path, overrides)
