"""The `models:` section of params.yaml: one {role: ModelSpec} mapping per profile.

The roles and the fields each takes are the plain table varireal.models.spec.ROLE_FIELDS, so this
schema imports no loader or builder.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import field_validator

from varireal.models.spec import ROLE_FIELDS, ModelSpec, unknown_role, validate_specs
from varireal.settings.base import Strict, Study
from varireal.vocabulary import PROFILES


class ModelsParams(Strict):
    tiny: dict[str, ModelSpec]
    paper: dict[str, ModelSpec]

    @field_validator("tiny", "paper", mode="before")
    @classmethod
    def _known_roles(cls, value: object) -> object:
        # Before the specs are parsed: a misspelled role is named as such, not as a spec with wrong fields.
        if isinstance(value, Mapping):
            for role in value:
                if role not in ROLE_FIELDS:
                    raise unknown_role(role)
        return value

    @field_validator("tiny", "paper", mode="after")
    @classmethod
    def _role_fields(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        return validate_specs(value)

    def for_profile(self, profile: str) -> dict[str, ModelSpec]:
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r}: allowed profiles are 'tiny' and 'paper'")
        return dict(getattr(self, profile))


class ModelsStage(Study):
    """What the models stage reads."""

    models: ModelsParams
