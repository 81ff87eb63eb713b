"""What params.yaml says about one model role: a tiny seeded build, or a pinned hub revision.

```yaml
models:
  tiny:
    detector: {source: tiny, seed: 0}
  paper:
    detector: {source: hub, repo_id: IDEA-Research/grounding-dino-base, revision: <40-hex commit>}
```

Every error names the key and the value that was given, and what is allowed instead.

This module is plain data and checks, importing nothing of the package: the fields of one spec,
ROLE_FIELDS (which roles exist and the role-specific fields each takes) and the checks of those
fields, so the `models:` schema (varireal.settings.models) needs no loader. The registry of
loaders and builders (varireal.models.roles) has exactly the roles of ROLE_FIELDS (a test checks).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# Fields that only some roles accept.
ROLE_SPECIFIC_FIELDS = ("sam2_config", "checkpoint")
# Every model role and the role-specific fields it takes: detector, segmenter and llm (masks, prompts),
# the diffusion pipelines' parts (edit), the filter's VLM and the classifier's CLIP.
ROLE_FIELDS: dict[str, frozenset[str]] = {
    "detector": frozenset(),
    "segmenter": frozenset({"sam2_config", "checkpoint"}),
    "llm": frozenset(),
    "text2image": frozenset(),
    "inpaint": frozenset(),
    "regen_base": frozenset(),
    "controlnet": frozenset(),
    "regen_vae": frozenset(),
    "ip_adapter": frozenset(),
    "vlm": frozenset(),
    "clip": frozenset(),
}
CONFIG_FOLDERS = ("configs/sam2.1", "configs/sam2")  # sam2's packaged model configs (not the training ones)
PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
HUB_ONLY_FIELDS = ("repo_id", "revision", "allow_patterns", "checkpoint")


class ModelSpec(BaseModel):
    """One model role: `source: tiny` (random weights from `seed`) or `source: hub` (a pinned commit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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


# --- the segmenter's fields: what sam2.json may say (varireal.models.segmenter) -------------------


@lru_cache(maxsize=1)
def packaged_configs() -> tuple[str, ...]:
    """The model config names the installed sam2 package ships, found without importing it."""
    found = importlib.util.find_spec("sam2")
    if found is None or found.origin is None:
        return ()
    root = Path(found.origin).parent
    return tuple(sorted(f"{folder}/{p.name}" for folder in CONFIG_FOLDERS for p in (root / folder).glob("*.yaml")))


def config_error(config: object, key: str = "config") -> str | None:
    if isinstance(config, str) and config in packaged_configs():
        return None
    allowed = ", ".join(packaged_configs()) or "none found: is sam2 installed?"
    return f"{key}={config!r} is not one of sam2's packaged configs (allowed: {allowed})"


def checkpoint_error(checkpoint: object, key: str = "checkpoint") -> str | None:
    if isinstance(checkpoint, str) and PLAIN_FILE_NAME.fullmatch(checkpoint):
        return None
    return (
        f"{key}={checkpoint!r} is not a plain file name inside the model directory "
        "(e.g. sam2.1_hiera_large.pt; no '/', no '..', no absolute path)"
    )


def check_segmenter_spec(role: str, spec: ModelSpec) -> None:
    """A hub segmenter names its sam2 config and checkpoint, both of the kinds sam2.json allows."""
    examples = {"sam2_config": "configs/sam2.1/sam2.1_hiera_l.yaml", "checkpoint": "sam2.1_hiera_large.pt"}
    if spec.source == "hub":
        for name, example in examples.items():
            if getattr(spec, name) is None:
                raise ValueError(f"{role}.{name}: required for source='hub' (e.g. {name}: {example})")
    if spec.sam2_config is not None and (error := config_error(spec.sam2_config, f"{role}.sam2_config")):
        raise ValueError(error)
    if spec.checkpoint is not None and (error := checkpoint_error(spec.checkpoint, f"{role}.checkpoint")):
        raise ValueError(error)


# --- a role's spec against the table --------------------------------------------------------------


def unknown_role(role: str) -> ValueError:
    return ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(sorted(ROLE_FIELDS))}")


def validate_role_spec(role: str, spec: ModelSpec) -> ModelSpec:
    """Role-level checks: the role exists and accepts the spec's role-specific fields."""
    if role not in ROLE_FIELDS:
        raise unknown_role(role)
    for name in ROLE_SPECIFIC_FIELDS:
        value = getattr(spec, name)
        if value is not None and name not in ROLE_FIELDS[role]:
            allowed = ", ".join(sorted(r for r, fields in ROLE_FIELDS.items() if name in fields)) or "none"
            raise ValueError(
                f"{role}.{name}={value!r}: `{name}` is not a setting of role {role!r} (roles that take it: {allowed})"
            )
    if role == "segmenter":
        check_segmenter_spec(role, spec)
    return spec


def validate_specs(specs: Mapping[str, ModelSpec | Mapping]) -> dict[str, ModelSpec]:
    """Validate a {role: spec} mapping (dicts are parsed into ModelSpec); raise ValueError naming the role."""
    out: dict[str, ModelSpec] = {}
    for role, spec in specs.items():
        parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.model_validate(spec)
        out[role] = validate_role_spec(role, parsed)
    return dict(sorted(out.items()))
