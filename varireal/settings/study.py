"""`study:` in method.yaml: what the study's claims are tested against. No stage reads it: the
section changes how `varireal study` judges the runs, never a run itself (varireal.study)."""

from __future__ import annotations

from pydantic import Field

from varireal.schema import Strict


class StudySettings(Strict):
    """The margin and level of every claim, and the power its sample-size advice aims at."""

    # Points of top-1 the paper calls no difference ("mostly less than 0.3 %"): a claim of no
    # difference must show |difference| below it, a claim of a difference must show more than it.
    margin: float = Field(0.3, gt=0, le=100)
    # Each verdict's error rate: one-sided tests at `level` (an equivalence: two of them, TOST),
    # Holm-corrected over the rows of a claim; intervals shown at 1 - 2 level.
    level: float = Field(0.05, gt=0, lt=0.5)
    # The chance the seeds or test images suggested for an open claim would decide it.
    power: float = Field(0.8, gt=0, lt=1)
    # More seeds than this is not suggested: beyond it, only more test images decide.
    max_seeds: int = Field(20, ge=2)
