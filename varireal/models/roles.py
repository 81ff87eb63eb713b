"""The registry of model roles, and the checks of params.yaml that need it.

ROLES gathers each family's entries (core: detector, segmenter, llm; diffusion; VLM; CLIP): per role
its tiny builder, loader, directory check, hub files and how to name its model class in the lock.
Adding a role is one RoleKind in its family's module. Two roles may share one kind's functions.

What a spec may say about itself (source, seed, repo, revision) is varireal.models.spec's; what
needs the registry is here: that a role exists, and that it takes the role-specific fields it is
given (validate_specs, and ModelsParams for the `models:` section of params.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from varireal.models.clip import CLIP_ROLES
from varireal.models.diffusion import DIFFUSION_ROLES
from varireal.models.mask_prompt_roles import CORE_ROLES
from varireal.models.role_kind import RoleKind
from varireal.models.spec import ROLE_SPECIFIC_FIELDS, ModelSpec
from varireal.models.vlm import VLM_ROLES
from varireal.vocabulary import PROFILES

ROLES: dict[str, RoleKind] = {**CORE_ROLES, **DIFFUSION_ROLES, **VLM_ROLES, **CLIP_ROLES}


def _unknown_role(role: str) -> ValueError:
    return ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(sorted(ROLES))}")


def load_role(role: str, model_dir: str | Path, device: str) -> Any:
    """Load any registered role's directory with its loader."""
    if role not in ROLES:
        raise _unknown_role(role)
    return ROLES[role].load(model_dir, device, role=role)


def validate_role_spec(role: str, spec: ModelSpec) -> ModelSpec:
    """Role-level checks: the role exists and accepts the spec's role-specific fields."""
    if role not in ROLES:
        raise _unknown_role(role)
    kind = ROLES[role]
    for name in ROLE_SPECIFIC_FIELDS:
        value = getattr(spec, name)
        if value is not None and name not in kind.spec_fields:
            allowed = ", ".join(sorted(r for r, k in ROLES.items() if name in k.spec_fields)) or "none"
            raise ValueError(
                f"{role}.{name}={value!r}: `{name}` is not a setting of role {role!r} (roles that take it: {allowed})"
            )
    if kind.check_spec is not None:
        kind.check_spec(role, spec)
    return spec


def validate_specs(specs: Mapping[str, ModelSpec | Mapping]) -> dict[str, ModelSpec]:
    """Validate a {role: spec} mapping (dicts are parsed into ModelSpec); raise ValueError naming the role."""
    out: dict[str, ModelSpec] = {}
    for role, spec in specs.items():
        parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.model_validate(spec)
        out[role] = validate_role_spec(role, parsed)
    return dict(sorted(out.items()))


class ModelsParams(BaseModel):
    """The `models:` section of params.yaml: one {role: ModelSpec} mapping per profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiny: dict[str, ModelSpec]
    paper: dict[str, ModelSpec]

    @field_validator("tiny", "paper", mode="before")
    @classmethod
    def _known_roles(cls, value: object) -> object:
        # Before the specs are parsed: a misspelled role is named as such, not as a spec with wrong fields.
        if isinstance(value, Mapping):
            for role in value:
                if role not in ROLES:
                    raise _unknown_role(role)
        return value

    @field_validator("tiny", "paper", mode="after")
    @classmethod
    def _role_fields(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        return validate_specs(value)

    def for_profile(self, profile: str) -> dict[str, ModelSpec]:
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r}: allowed profiles are 'tiny' and 'paper'")
        return dict(getattr(self, profile))
