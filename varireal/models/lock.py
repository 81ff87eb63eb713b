"""The models lock: what every role of a profile is, down to the sha256 of each of its files.

`resolve_models(profile, specs, root)` builds (tiny) or fetches (hub, at the pinned commit) every
role into the machine's caches (varireal.models.weights) and writes `root/lock.json`: per role
the model class, source, repo id, revision, seed, spec and file hashes, and the package versions.
The lock names no directory: it is what DVC versions and `dvc pull` restores, and
`read_lock(path).path(role)` finds, builds or downloads that role's exact bytes on this machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varireal.io import write_json
from varireal.models import weights
from varireal.models.errors import LockError
from varireal.models.hashes import file_hashes, sha256_file  # noqa: F401  (what callers hash model dirs with)
from varireal.models.roles import ROLES
from varireal.models.spec import ModelSpec, validate_specs
from varireal.vocabulary import PROFILES

LOCK_NAME = "lock.json"
LOCK_FORMAT = 2  # 2: weights live in the caches, the lock holds no paths
# What a fingerprint covers: what decides the models' outputs, not where they lie.
FINGERPRINT_KEYS = ("class_name", "source", "repo_id", "revision", "seed", "files")


def _entry(role: str, spec: ModelSpec, model_dir: Path, files: dict[str, str]) -> dict[str, Any]:
    return {
        "role": role,
        "class_name": ROLES[role].class_name(model_dir),
        "source": spec.source,
        "repo_id": spec.repo_id,
        "revision": spec.revision,
        "seed": spec.seed,
        "tiny_version": ROLES[role].tiny_version if spec.source == "tiny" else None,
        "spec": spec.model_dump(mode="json"),
        "files": files,
        "bytes": sum(weights.sizes(model_dir).values()),
    }


def resolve_models(profile: str, specs: Mapping[str, ModelSpec], root: str | Path) -> dict:
    """Build or fetch every role and write root/lock.json; return the lock written."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: allowed profiles are 'tiny' and 'paper'")
    roles = {}
    for role, spec in validate_specs(specs).items():
        model_dir, files = weights.resolve(role, spec)
        roles[role] = _entry(role, spec, model_dir, files)
    lock = {"format": LOCK_FORMAT, "profile": profile, "roles": roles, "packages": weights.package_versions()}
    write_json(Path(root) / LOCK_NAME, lock)
    return lock


@dataclass(frozen=True)
class Lock:
    """lock.json, read back: what exactly each role is, and where its bytes lie on this machine."""

    data: dict
    source: Path

    @property
    def profile(self) -> str:
        return self.data["profile"]

    @property
    def roles(self) -> list[str]:
        return sorted(self.data["roles"])

    def record(self, role: str) -> dict:
        """The role's lock entry (class_name, source, repo_id, revision, seed, files, ...)."""
        if role not in self.data["roles"]:
            raise LockError(
                f"role {role!r} is not in {self.source} (it has: {', '.join(self.roles) or 'none'}); add it under "
                f"models.{self.profile} in params.yaml and rerun `dvc repro models`"
            )
        return json.loads(json.dumps(self.data["roles"][role]))

    def path(self, role: str) -> Path:
        """A directory holding exactly the locked files of `role`: from the cache, or built / downloaded now;
        every file's sha256 is checked against this lock first (WeightsMismatchError when one differs)."""
        return weights.materialize(role, self.record(role))

    def fingerprint(self, *roles: str) -> str:
        """sha256 over what decides these roles' outputs (class, source, repo, revision, seed, file hashes)."""
        picked = {role: {k: self.record(role).get(k) for k in FINGERPRINT_KEYS} for role in sorted(roles or self.roles)}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def read_lock(path: str | Path) -> Lock:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise LockError(
            f"{path}: not found; run `dvc pull {path}` (a shared lock) or `dvc repro models` (or `python -m stages.models`)"
        ) from err
    except ValueError as err:
        raise LockError(f"{path}: not valid JSON ({err}); rerun `dvc repro models`") from err
    if not isinstance(data, dict) or not isinstance(data.get("roles"), dict):
        raise LockError(f"{path}: not a models lock (no 'roles'); rerun `dvc repro models`")
    if data.get("format") != LOCK_FORMAT:
        raise LockError(
            f"{path}: lock format {data.get('format')!r}, this code reads format {LOCK_FORMAT}; rerun `dvc repro models`"
        )
    return Lock(data, path)
