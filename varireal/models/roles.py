"""The registry of model roles: per role its tiny builder, loader, directory check, hub files and
how to name its model class in the lock.

ROLES gathers each family's entries (core: detector, segmenter, llm; diffusion; VLM; CLIP). Adding a
role is one RoleKind in its family's module and one line of varireal.models.spec.ROLE_FIELDS, the
plain table params are checked against. Two roles may share one kind's functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from varireal.models.clip import CLIP_ROLES
from varireal.models.diffusion import DIFFUSION_ROLES
from varireal.models.mask_prompt_roles import CORE_ROLES
from varireal.models.role_kind import RoleKind
from varireal.models.spec import unknown_role
from varireal.models.vlm import VLM_ROLES

ROLES: dict[str, RoleKind] = {**CORE_ROLES, **DIFFUSION_ROLES, **VLM_ROLES, **CLIP_ROLES}


def load_role(role: str, model_dir: str | Path, device: str) -> Any:
    """Load any registered role's directory with its loader."""
    if role not in ROLES:
        raise unknown_role(role)
    return ROLES[role].load(model_dir, device, role=role)
