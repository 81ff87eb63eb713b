"""What a model role is made of: how to build its tiny version, load it, check it and fetch it.

Each family of roles (core, diffusion, VLM, CLIP) defines its RoleKind entries in its own module;
varireal.models.roles gathers them into ROLES.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varireal.models.spec import ModelSpec


@dataclass(frozen=True)
class RoleKind:
    build_tiny: Callable[[Path, ModelSpec], Any]  # write the tiny model's files into an empty dir
    load: Callable[..., Any]  # (model_dir, device) -> the loaded objects a stage uses
    problems: Callable[[Path], list[str]]  # what a dir lacks to load; [] = complete
    class_name: Callable[[Path], str]  # model class recorded in the lock, read from the files
    hub_patterns: Callable[[ModelSpec], list[str]]  # allow_patterns for snapshot_download
    tiny_version: int = 1  # bump when the tiny builder's output changes: existing builds are redone
    finish_hub: Callable[[Path, ModelSpec], None] | None = None  # after download / copy: e.g. write sam2.json


def architecture(model_dir: Path) -> str:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return (config.get("architectures") or [config.get("model_type", "unknown")])[0]


def patterns(*default: str) -> Callable[[ModelSpec], list[str]]:
    return lambda spec: list(spec.allow_patterns or default)
