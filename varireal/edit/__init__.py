"""Minimal edits of real training images: one attribute (background, color, texture) at a time.

`plan` says what to edit (slots, values, seeds), `methods` edits a batch with the pipelines
passed in (`Editors`), `run` drives a whole edit set with resume, `store` keeps it on disk.
"""

from varireal.edit.methods import Edited, Editors, Job, edit_batch
from varireal.edit.plan import EditItem, Source, plan_edits, read_sources
from varireal.edit.run import run_edits
from varireal.edit.settings import EditParams

__all__ = ["EditItem", "EditParams", "Edited", "Editors", "Job", "Source", "edit_batch", "plan_edits", "read_sources", "run_edits"]
