"""One planned edit as a method sees it: the real image and mask, the value, and the seed (varireal.edit.items plans them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """One real training image and its mask (mask_path None when the mask stage has none)."""

    id: str
    path: Path
    class_name: str
    class_index: int
    mask_path: Path | None
    mask_problem: str = ""  # why there is no usable mask


@dataclass(frozen=True)
class EditItem:
    edit_id: str
    source: Source
    attribute: str
    feasibility: str
    value: str
    description: str
    slot: int
    candidate: int
    seed: int
    prefix: str = ""  # the dataset's word before class names in prompts
    rgb: tuple[int, int, int] | None = None  # color edits: the tint the prompts stage resolved for `value`
    rgb_source: str = ""  # which table named it: reference, file, css4 or xkcd

    @property
    def fields(self) -> dict[str, str]:
        """What prompt templates may use."""
        return {
            "value": self.value,
            "description": self.description,
            "class_name": self.source.class_name,
            "prefix": self.prefix,
        }

    def fill(self, template: str) -> str:
        return " ".join(template.format(**self.fields).split())
