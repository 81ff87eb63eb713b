"""What params.yaml says about one model role: a tiny seeded build, or a pinned hub revision.

```yaml
models:
  tiny:
    detector: {source: tiny, seed: 0}
  paper:
    detector: {source: hub, repo_id: IDEA-Research/grounding-dino-base, revision: <40-hex commit>}
```

Every error names the key and the value that was given, and what is allowed instead.

This module knows the fields of one spec only; which roles exist, and which role takes which
role-specific field, is checked against the registry in varireal.models.roles (ModelsParams,
validate_specs), so that the schema imports nothing of the package.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# Fields that only some roles accept (each role's RoleKind.spec_fields lists its own).
ROLE_SPECIFIC_FIELDS = ("sam2_config", "checkpoint")
HUB_ONLY_FIELDS = ("repo_id", "revision", "allow_patterns", "checkpoint")


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
    def _source_fields(self) -> ModelSpec:
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
