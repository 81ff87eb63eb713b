"""What an attribute is to the pipeline: one `AttributeMethod` in its own module.

Each attribute module (background.py, color.py, texture.py) holds everything about its attribute:
its settings (a params.yaml block under `edit.<profile>.methods.<name>`), its method (a batch of
prepared items in, edited images out, through the shared steps of varireal.attributes.steps), the
pipelines it calls, its value lists' scope and what the prompt LLM is told about it. The registry
(varireal.attributes.registry) lists them; adding an attribute is a new module, a registry line and
its name in varireal.vocabulary (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from varireal.attributes.step_settings import MethodBlock

# Where an attribute's value lists live in the prompts document: one per dataset (a list, or lists per
# group of classes: a class or a category, as the reference's texture lists), or one per class (colour).
ListScope = Literal["dataset", "class"]
# The kinds of diffusion call a cost estimate knows (varireal.estimate).
StepKind = Literal["text2image", "inpaint", "regenerate"]


@dataclass(frozen=True)
class Guide:
    """What the prompt LLM is told about the attribute; {target} is "such objects" or "a real <class>"."""

    what: str  # what the attribute is, and what stays unchanged
    feasible: str  # what makes a value feasible for {target}
    infeasible: str  # what makes it infeasible
    value: str  # the form of one value ("a short scene name of 1 to 5 words")


@dataclass(frozen=True)
class AttributeMethod:
    name: str
    settings: type[MethodBlock]  # its block of edit.<profile>.methods (and per dataset, per feasibility)
    # (Editors, jobs, settings) -> one varireal.attributes.steps.Edited per job, in order
    edit: Callable[..., list[Any]]
    editors: tuple[str, ...]  # the pipelines it calls (varireal.attributes.steps.EDITOR_ROLES)
    main_step: str  # the settings field whose prompt names an edit in the manifest
    costed_steps: tuple[tuple[str, StepKind], ...]  # (settings field, kind) of each diffusion call it makes
    lists: ListScope
    guide: Guide
    colors: bool = False  # its values are colours: the prompts stage resolves each to RGB
