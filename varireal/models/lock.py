"""Resolve every model role of a profile into a local directory, and lock what was used.

`resolve_models(profile, specs, root)` puts each role in `root/<profile>/<role>/` (tiny: built
from its seed; hub: downloaded at its pinned commit, or files the user copied there by hand) and
writes `root/lock.json`: per role the model class, source, repo id, revision, seed, path
(relative to the repository root) and the sha256 of every file.

Each role directory carries `varireal_model.json` (its spec and file hashes). A rerun whose spec
matches that record and whose files are all there, at their recorded sizes, reuses the directory
without rebuilding or re-downloading. New directories are assembled beside the final one and
renamed into place, so a killed run never leaves a half model under the role's name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from varireal.io import write_json
from varireal.models import hub
from varireal.models.errors import LockError, MissingWeightsError, ModelDirError
from varireal.models.roles import ROLES
from varireal.models.spec import ModelSpec, validate_specs

MARKER = "varireal_model.json"
LOCK_NAME = "lock.json"
LOCK_FORMAT = 1
# Packages whose versions decide the bytes of a tiny build and how every model loads.
PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "sam2", "hydra-core", "diffusers", "open-clip-torch", "peft")
# What a fingerprint covers: what decides the models' outputs, not where they lie.
FINGERPRINT_KEYS = ("class_name", "source", "repo_id", "revision", "seed", "files")


# --- files --------------------------------------------------------------------------------------


def _model_files(model_dir: Path) -> list[Path]:
    """Every regular file of the model, sorted, without our marker and huggingface_hub's .cache."""
    files = []
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if rel.parts[0] in (MARKER, hub.HF_LOCAL_CACHE) or not path.is_file():
            continue
        files.append(path)
    return files


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(model_dir: str | Path) -> dict[str, str]:
    """{relative posix path: sha256} of every model file, sorted by path."""
    model_dir = Path(model_dir)
    return {p.relative_to(model_dir).as_posix(): sha256_file(p) for p in _model_files(model_dir)}


def _sizes(model_dir: Path) -> dict[str, int]:
    return {p.relative_to(model_dir).as_posix(): p.stat().st_size for p in _model_files(model_dir)}


# --- markers --------------------------------------------------------------------------------------


def _record(role: str, spec: ModelSpec, model_dir: Path, provenance: str) -> dict[str, Any]:
    kind = ROLES[role]
    return {
        "role": role,
        "class_name": kind.class_name(model_dir),
        "source": spec.source,
        "repo_id": spec.repo_id,
        "revision": spec.revision,
        "seed": spec.seed,
        "tiny_version": kind.tiny_version if spec.source == "tiny" else None,
        "spec": spec.model_dump(mode="json"),
        "provenance": provenance,
        "files": file_hashes(model_dir),
        "sizes": _sizes(model_dir),
    }


def _read_marker(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _marker_matches(role: str, spec: ModelSpec, model_dir: Path, marker: dict | None, verify: bool) -> bool:
    """The directory holds exactly what the marker recorded, for this very spec."""
    if not marker or marker.get("spec") != spec.model_dump(mode="json"):
        return False
    if spec.source == "tiny" and marker.get("tiny_version") != ROLES[role].tiny_version:
        return False
    if marker.get("sizes") != _sizes(model_dir) or ROLES[role].problems(model_dir):
        return False
    return not verify or marker.get("files") == file_hashes(model_dir)


# --- putting directories in place -------------------------------------------------------------------


def _staging_dir(parent: Path, prefix: str) -> Path:
    """A fresh directory beside the final one, with the usual permissions (mkdtemp makes it 0700)."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)
    return path


def _clean_stale(parent: Path, role: str) -> None:
    """Leftovers of a killed run for this role (not the resumable .partial-<role>-<revision> download)."""
    for prefix in (f".tmp-{role}-", f".old-{role}-"):
        for stale in parent.glob(prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)


def _swap_in(new_dir: Path, role_dir: Path) -> None:
    """Rename new_dir to role_dir, replacing any previous directory (moved aside, then removed)."""
    old = None
    if role_dir.exists():
        old = Path(tempfile.mkdtemp(dir=role_dir.parent, prefix=f".old-{role_dir.name}-"))
        old.rmdir()
        os.replace(role_dir, old)
    os.replace(new_dir, role_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _finish(role: str, spec: ModelSpec, staging: Path, role_dir: Path, provenance: str) -> dict:
    problems = ROLES[role].problems(staging)
    if problems:
        raise ModelDirError(f"{role}: the new model in {staging} is incomplete, missing: {'; '.join(problems)}")
    record = _record(role, spec, staging, provenance)
    write_json(staging / MARKER, record)
    if staging != role_dir:
        _swap_in(staging, role_dir)
    return record


def _build_tiny(role: str, spec: ModelSpec, role_dir: Path) -> dict:
    staging = _staging_dir(role_dir.parent, f".tmp-{role}-")
    try:
        ROLES[role].build_tiny(staging, spec)
        return _finish(role, spec, staging, role_dir, f"built by varireal.models.tiny (seed {spec.seed})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _adopt_copied(role: str, spec: ModelSpec, role_dir: Path) -> dict | None:
    """Files the user put into role_dir by hand (no marker): use them if complete and not of another commit."""
    kind = ROLES[role]
    commits = hub.local_commits(role_dir)
    if commits and commits != {spec.revision}:
        raise MissingWeightsError(
            f"{role}: {role_dir} holds files downloaded at commit(s) {', '.join(sorted(commits))}, but the spec pins "
            f"{spec.repo_id}@{spec.revision}; remove the directory or download that revision into it.\n"
            + hub.how_to_provide(role, spec, role_dir, kind.hub_patterns(spec))
        )
    if kind.finish_hub is not None and kind.problems(role_dir):
        # e.g. a copied SAM 2 checkpoint without our sam2.json: write it if the checkpoint is there
        try:
            kind.finish_hub(role_dir, spec)
        except OSError:
            return None
    if kind.problems(role_dir):
        return None
    hub.drop_local_cache(role_dir)
    how = f"hf download at commit {spec.revision}" if commits else "copied into place by hand (commit not verifiable)"
    return _finish(role, spec, role_dir, role_dir, how)


def _obtain_hub(role: str, spec: ModelSpec, role_dir: Path, marker: dict | None) -> dict:
    kind = ROLES[role]
    if role_dir.is_dir() and marker is None:
        adopted = _adopt_copied(role, spec, role_dir)
        if adopted is not None:
            return adopted
    patterns = kind.hub_patterns(spec)
    # Kept between runs so an interrupted download resumes; one per revision, so no stale shards mix in.
    staging = role_dir.parent / f".partial-{role}-{spec.revision}"
    for other in role_dir.parent.glob(f".partial-{role}-*"):
        if other != staging:
            shutil.rmtree(other, ignore_errors=True)
    try:
        hub.download(role, spec, staging, patterns, role_dir)
    except MissingWeightsError as err:
        if staging.is_dir() and not any(p.name != hub.HF_LOCAL_CACHE for p in staging.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)  # nothing fetched: leave no empty staging dir
        notes = []
        if marker is not None:
            held = marker.get("spec", {})
            notes.append(
                f"{role_dir} holds another spec ({held.get('source')} {held.get('repo_id')}@{held.get('revision')}); it was left as it is"
            )
        elif role_dir.is_dir():
            notes.append(f"{role_dir} has files but lacks: {'; '.join(kind.problems(role_dir))}")
        raise MissingWeightsError("\n".join([str(err), *notes])) from err.__cause__
    if kind.finish_hub is not None:
        kind.finish_hub(staging, spec)
    hub.drop_local_cache(staging)
    problems = kind.problems(staging)
    if problems:
        raise MissingWeightsError(
            f"{role}: downloaded {spec.repo_id}@{spec.revision} with allow_patterns {patterns} into {staging}, "
            f"but it lacks: {'; '.join(problems)}; widen allow_patterns for this role"
        )
    return _finish(role, spec, staging, role_dir, f"downloaded from the hub at commit {spec.revision}")


def resolve_role(role: str, spec: ModelSpec, role_dir: Path, *, verify: bool = False) -> dict:
    """Make role_dir hold the model the spec describes; return its record (class, files, ...)."""
    role_dir.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(role_dir.parent, role)
    marker = _read_marker(role_dir) if role_dir.is_dir() else None
    if role_dir.is_dir() and _marker_matches(role, spec, role_dir, marker, verify):
        return marker  # type: ignore[return-value]
    if spec.source == "tiny":
        return _build_tiny(role, spec, role_dir)
    return _obtain_hub(role, spec, role_dir, marker)


# --- the lock ---------------------------------------------------------------------------------------


def _relative(path: Path, repo_root: Path) -> str:
    path, repo_root = path.resolve(), repo_root.resolve()
    try:
        return path.relative_to(repo_root).as_posix()
    except ValueError:
        return path.as_posix()


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def resolve_models(
    profile: str,
    specs: Mapping[str, ModelSpec],
    root: str | Path,
    *,
    repo_root: str | Path | None = None,
    verify: bool = False,
) -> dict:
    """Build or download every role into root/<profile>/<role>/ and write root/lock.json.

    repo_root: what lock paths are relative to (default: the working directory, i.e. the repo
    root when run by DVC). verify: re-hash reused directories instead of comparing file sizes.
    Returns the lock (the dict written to lock.json).
    """
    if profile not in ("tiny", "paper"):
        raise ValueError(f"profile={profile!r}: allowed profiles are 'tiny' and 'paper'")
    specs = validate_specs(specs)
    root = Path(root)
    repo_root = Path(repo_root) if repo_root is not None else Path.cwd()
    roles: dict[str, dict] = {}
    for role, spec in specs.items():
        role_dir = root / profile / role
        record = resolve_role(role, spec, role_dir, verify=verify)
        entry = {k: v for k, v in record.items() if k != "sizes"}
        entry["path"] = _relative(role_dir, repo_root)
        entry["bytes"] = sum(record.get("sizes", {}).values())
        roles[role] = entry
    lock = {
        "format": LOCK_FORMAT,
        "profile": profile,
        "root": _relative(root, repo_root),
        "roles": roles,
        "packages": _versions(),
    }
    write_json(root / LOCK_NAME, lock)
    return lock


@dataclass(frozen=True)
class Lock:
    """lock.json, read back: where each role lies and what exactly it is."""

    data: dict
    repo_root: Path

    @property
    def profile(self) -> str:
        return self.data["profile"]

    @property
    def roles(self) -> list[str]:
        return sorted(self.data["roles"])

    def record(self, role: str) -> dict:
        """The role's lock entry (class_name, source, repo_id, revision, seed, path, files, ...)."""
        if role not in self.data["roles"]:
            raise LockError(
                f"role {role!r} is not in the lock (it has: {', '.join(self.roles) or 'none'}); add it under "
                f"models.{self.profile} in params.yaml and rerun `dvc repro models`"
            )
        return json.loads(json.dumps(self.data["roles"][role]))

    def path(self, role: str) -> Path:
        """The role's model directory (absolute, or relative to the working directory when that is the repo root)."""
        path = Path(self.record(role)["path"])
        if path.is_absolute():
            return path
        full = self.repo_root / path
        try:
            return full.relative_to(Path.cwd())
        except ValueError:
            return full

    def fingerprint(self, *roles: str) -> str:
        """sha256 over what decides these roles' outputs (class, source, repo, revision, seed, file hashes)."""
        picked = {role: {k: self.record(role).get(k) for k in FINGERPRINT_KEYS} for role in sorted(roles or self.roles)}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def read_lock(path: str | Path) -> Lock:
    """Read root/lock.json; paths in it resolve against the repository root it was written from."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise LockError(f"{path}: not found; run `dvc repro models` (or `python -m stages.models`) first") from err
    except ValueError as err:
        raise LockError(f"{path}: not valid JSON ({err}); rerun `dvc repro models`") from err
    if not isinstance(data, dict) or "roles" not in data or "root" not in data:
        raise LockError(f"{path}: not a models lock (no 'roles'/'root'); rerun `dvc repro models`")
    root = Path(data["root"])
    if root.is_absolute():
        repo_root = Path("/")
    else:
        # lock.json lies in <repo_root>/<root>/: walk up as many levels as `root` has parts.
        repo_root = path.resolve().parent
        for _ in root.parts:
            repo_root = repo_root.parent
    return Lock(data, repo_root)
