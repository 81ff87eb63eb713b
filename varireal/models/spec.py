"""What params.yaml says about each model role: a tiny seeded build, or a pinned hub revision.

```yaml
models:
  tiny:
    detector: {source: tiny, seed: 0}
  paper:
    detector: {source: hub, repo_id: IDEA-Research/grounding-dino-base, revision: <40-hex commit>}
```

Every error names the key and the value that was given, and what is allowed instead.
"""

from __future__ import annotations

import re
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# Fields that only some roles accept (each role lists its own in varireal.models.roles).
ROLE_SPECIFIC_FIELDS = ("sam2_config", "checkpoint")
HUB_ONLY_FIELDS = ("repo_id", "revision", "allow_patterns", "checkpoint")

Profile = Literal["tiny", "paper"]


class ModelSpec(BaseModel):
    """One model role: `source: tiny` (random weights from `seed`) or `source: hub` (a pinned commit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["tiny", "hub"] = Field(
        description="tiny: build random weights locally; hub: download a pinned revision"
    )
    seed: int | None = Field(None, ge=0, description="tiny only: the build seed (same seed -> byte-identical files)")
    repo_id: str | None = Field(None, description="hub only: owner/name on the Hugging Face hub")
    revision: str | None = Field(None, description="hub only: the 40-character commit SHA to download")
    allow_patterns: tuple[str, ...] | None = Field(
        None, description="hub only: files to fetch (default: the role's own list)"
    )
    sam2_config: str | None = Field(
        None, description="segmenter only: sam2 config name, e.g. configs/sam2.1/sam2.1_hiera_l.yaml"
    )
    checkpoint: str | None = Field(
        None, description="segmenter + hub only: checkpoint file in the repo, e.g. sam2.1_hiera_large.pt"
    )

    @field_validator("revision")
    @classmethod
    def _commit_sha(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not COMMIT_SHA.fullmatch(value.lower()):
            raise ValueError(
                f"revision={value!r} is not a commit SHA: pin the full 40-character hexadecimal commit id "
                "(a branch or tag such as 'main' moves); find it on the model page under 'Files and versions' -> "
                "'History', or with `huggingface_hub.HfApi().model_info(repo_id).sha`"
            )
        return value.lower()

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        if value is not None and not REPO_ID.fullmatch(value):
            raise ValueError(f"repo_id={value!r} is not a hub repo id of the form 'owner/name'")
        return value

    @field_validator("allow_patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not p.strip() for p in value)):
            raise ValueError(
                f"allow_patterns={list(value)!r}: give at least one non-empty glob pattern, or leave it out"
            )
        return value

    @model_validator(mode="after")
    def _source_fields(self) -> "ModelSpec":
        if self.source == "tiny":
            if self.seed is None:
                raise ValueError(
                    "source='tiny' needs `seed` (a non-negative integer): the tiny weights are built from it"
                )
            for name in HUB_ONLY_FIELDS:
                value = getattr(self, name)
                if value is not None:
                    raise ValueError(f"{name}={value!r} applies only to source='hub'; remove it (source is 'tiny')")
        else:
            if self.seed is not None:
                raise ValueError(f"seed={self.seed!r} applies only to source='tiny'; remove it (source is 'hub')")
            if self.repo_id is None:
                raise ValueError("source='hub' needs `repo_id` (owner/name on the Hugging Face hub)")
            if self.revision is None:
                raise ValueError(
                    f"source='hub' needs `revision` for repo_id={self.repo_id!r}: set it to the 40-character commit SHA "
                    "to download (model page -> 'Files and versions' -> 'History'); a repo id alone names no particular weights"
                )
        return self


def validate_role_spec(role: str, spec: ModelSpec) -> ModelSpec:
    """Role-level checks: the role exists and accepts the spec's role-specific fields."""
    from varireal.models.roles import ROLES

    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(sorted(ROLES))}")
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
        from varireal.models.roles import ROLES

        if isinstance(value, Mapping):
            for role in value:
                if role not in ROLES:
                    raise ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(sorted(ROLES))}")
        return value

    @field_validator("tiny", "paper", mode="after")
    @classmethod
    def _role_fields(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        return validate_specs(value)

    def for_profile(self, profile: str) -> dict[str, ModelSpec]:
        if profile not in ("tiny", "paper"):
            raise ValueError(f"profile={profile!r}: allowed profiles are 'tiny' and 'paper'")
        return dict(getattr(self, profile))
