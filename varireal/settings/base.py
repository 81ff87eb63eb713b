"""What every stage's settings share: strict models, the tiny/paper split, and the study's knobs.

A stage validates the sections it reads (varireal.params.load_params with its stage's schema from
this package); `varireal check-params` validates them all (varireal.settings.whole).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field, model_validator

from varireal.schema import Strict
from varireal.vocabulary import DATASETS, PROFILES, Attribute, DatasetName, Profile, Protocol, TrainFeasibility

T = TypeVar("T", bound=BaseModel)

__all__ = ["DatasetParams", "PerProfile", "ProtocolSection", "Strict", "Study"]


class PerProfile(Strict, Generic[T]):
    """A section whose settings differ between the tiny (CPU) and paper (GPU) profiles.

    In params.yaml the keys written beside the two blocks are shared (varireal.params merges them
    into both before validation), so each block states only what differs.
    """

    tiny: T
    paper: T

    def pick(self, profile: Profile) -> T:
        return getattr(self, profile)


class ProtocolSection(Strict):
    """`protocol:` per profile: which real images train and which checkpoint is kept."""

    tiny: Protocol
    paper: Protocol

    def pick(self, profile: Profile) -> Protocol:
        return getattr(self, profile)


class DatasetParams(Strict):
    prefix: str = Field(description="word put before the class name, e.g. 'pet' -> 'a pet Abyssinian.'")


class Study(Strict):
    """The study's knobs, which every stage's settings start from (each stage reads the ones it needs)."""

    profile: Profile
    dataset: DatasetName
    feas: TrainFeasibility
    attr: Attribute
    datasets: dict[DatasetName, DatasetParams]

    @model_validator(mode="after")
    def _dataset_blocks_name_datasets(self) -> Study:
        """Every `<section>.<profile>.datasets` (edit's, train's: only what differs per dataset) names a dataset."""
        for section in type(self).model_fields:
            for profile in PROFILES:
                named = getattr(getattr(getattr(self, section), profile, None), "datasets", None)
                unknown = sorted(set(named) - set(DATASETS)) if isinstance(named, dict) else []
                if unknown:
                    raise ValueError(
                        f"{section}.{profile}.datasets.{unknown[0]}: unknown dataset; allowed: {', '.join(DATASETS)}"
                    )
        return self

    @property
    def prefix(self) -> str:
        """The chosen dataset's word before class names in prompts."""
        if self.dataset not in self.datasets:
            raise ValueError(f"datasets.{self.dataset}: missing; add a section for the chosen dataset")
        return self.datasets[self.dataset].prefix
