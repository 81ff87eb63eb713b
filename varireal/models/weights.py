"""Where each role's weights lie on this machine: outside every workspace, shared by all of them.

- hub roles: the standard Hugging Face cache (`HF_HUB_CACHE`, default ~/.cache/huggingface/hub),
  at the pinned commit, so clones, queued experiments and other projects share one download;
- tiny roles: built from their seed into the varireal cache (`VARIREAL_CACHE`, default
  $XDG_CACHE_HOME/varireal or ~/.cache/varireal), one directory per distinct set of file hashes.

The `models` stage writes only the lock (what each role is, down to the sha256 of every file);
a stage asks for the roles it uses and gets a directory holding exactly those bytes: found in
the cache, or built / downloaded on demand, and in every case checked file by file against the
lock's sha256 before it is loaded. So a clone that pulled the lock, or a queued experiment in a
temporary copy, rebuilds and downloads nothing it has, and never loads bytes the lock does not name.

Hashing reads every byte once per file: a memo in the varireal cache (hash_files) remembers what
each file hashed to under its stat, so an unchanged file is not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from varireal.io import write_json
from varireal.keys import tiny_build_code
from varireal.models import hub
from varireal.models.errors import LockError, MissingWeightsError, ModelDirError, WeightsMismatchError
from varireal.models.hashes import (
    MARKER,
    SHA256,
    FileCheck,
    cache_root,
    check_files,
    compare,
    file_hashes,
    hash_files,
    model_files,
    on_disk,
    wrong_files,
)
from varireal.models.roles import ROLES
from varireal.models.spec import ModelSpec

# Packages whose versions decide the bytes of a tiny build and how every model loads.
PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface-hub",
    "sam2",
    "hydra-core",
    "diffusers",
    "open-clip-torch",
    "peft",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _mismatch(role: str, model_dir: Path, wrong: list[FileCheck], against: str, repair: str) -> WeightsMismatchError:
    listed = "\n".join(f"  {check.describe()}" for check in wrong)
    return WeightsMismatchError(
        f"{role}: {len(wrong)} file(s) in {model_dir} are not the bytes {against} records; nothing was loaded:\n"
        f"{listed}\n{repair}"
    )


def sizes(model_dir: Path) -> dict[str, int]:
    return {p.relative_to(model_dir).as_posix(): p.stat().st_size for p in model_files(model_dir)}


def files_key(files: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(files), sort_keys=True).encode()).hexdigest()[:24]


def _place(staging: Path, final: Path, files: Mapping[str, str]) -> Path:
    """Rename a finished directory into place. If another process was first, keep theirs (same
    bytes); a damaged one is moved aside and replaced."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir():
        if _holds(final, files):
            shutil.rmtree(staging, ignore_errors=True)
            return final
        _discard(final)
    try:
        os.replace(staging, final)
    except OSError:
        if not _holds(final, files):  # lost a race to a concurrent build: theirs must be whole
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _discard(model_dir: Path) -> None:
    """Move a damaged directory aside in one rename (no process finds it half deleted), then delete it."""
    damaged = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=".damaged-"))
    try:
        os.replace(model_dir, damaged / model_dir.name)
    except FileNotFoundError:  # another process discarded it first
        pass
    shutil.rmtree(damaged, ignore_errors=True)


def _staging(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    path.chmod(0o755)
    return path


def _complete(model_dir: Path, files: Mapping[str, str]) -> bool:
    """The directory holds the marker of exactly these files, and they are all there at their sizes."""
    try:
        marker = json.loads((model_dir / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("files") == dict(files) and marker.get("sizes") == sizes(model_dir)


def _holds(model_dir: Path, files: Mapping[str, str]) -> bool:
    """Complete (marker, sizes) and every file hashes to the lock's sha256 (through the memo)."""
    return _complete(model_dir, files) and not wrong_files(check_files(on_disk(model_dir), files))


def _seal(model_dir: Path, files: Mapping[str, str]) -> None:
    write_json(model_dir / MARKER, {"files": dict(files), "sizes": sizes(model_dir)})


# --- tiny roles -----------------------------------------------------------------------------------


def tiny_spec_key(role: str, spec: ModelSpec) -> str:
    parts = {
        "role": role,
        "spec": spec.model_dump(mode="json"),
        "tiny_version": ROLES[role].tiny_version,
        "packages": package_versions(),
        "code": tiny_build_code(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def build_tiny(role: str, spec: ModelSpec) -> tuple[Path, dict[str, str]]:
    """The tiny build of this spec in the cache (built now unless an earlier build is there)."""
    role_root = cache_root() / "tiny" / role
    index = role_root / "specs" / f"{tiny_spec_key(role, spec)}.json"
    try:
        files = json.loads(index.read_text())
        if _holds(role_root / files_key(files), files):
            return role_root / files_key(files), files
    except (OSError, ValueError):
        pass
    staging = _staging(role_root, ".build-")
    try:
        ROLES[role].build_tiny(staging, spec)
        problems = ROLES[role].problems(staging)
        if problems:
            raise ModelDirError(f"{role}: the tiny build in {staging} is incomplete, missing: {'; '.join(problems)}")
        files = file_hashes(staging)
        _seal(staging, files)
        final = _place(staging, role_root / files_key(files), files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json(index, files)
    return final, files


def _tiny_for_lock(role: str, record: Mapping[str, Any]) -> Path:
    """The locked tiny build, verified; a damaged one is rebuilt from the lock's seed into place."""
    files = record["files"]
    model_dir = cache_root() / "tiny" / role / files_key(files)
    if model_dir.is_dir():
        wrong = wrong_files(check_files(on_disk(model_dir), files))
        if not wrong and _complete(model_dir, files):
            return model_dir
        found = "; ".join(check.describe() for check in wrong) or f"its {MARKER} does not match the files"
        print(
            f"{role}: the cached tiny build {model_dir} is not the bytes the lock records ({found}); "
            f"rebuilding it from seed {record.get('seed')} into place",
            file=sys.stderr,
        )
        _discard(model_dir)
    built, built_files = build_tiny(role, ModelSpec.model_validate(record["spec"]))
    if built_files != files:
        changed = sorted(name for name in set(files) | set(built_files) if files.get(name) != built_files.get(name))
        raise LockError(
            f"{role}: the tiny build of seed {record.get('seed')} here differs from the lock in {', '.join(changed)}; "
            "the lock was written with other package versions or another tiny builder. Rerun `dvc repro models -f` "
            "to lock what this machine builds (this changes every result that depends on the role)"
        )
    wrong = wrong_files(check_files(on_disk(built), files))
    if wrong:  # the build hashed right, the files read back do not: the disk, or a concurrent writer
        raise _mismatch(
            role, built, wrong, "the lock", f"Repair: delete {built} and rerun; if it recurs, check the disk"
        )
    return built


# --- hub roles ------------------------------------------------------------------------------------


def hub_patterns(role: str, spec: ModelSpec) -> list[str]:
    return list(ROLES[role].hub_patterns(spec))


def _view(role: str, spec: ModelSpec, snapshot: Path, patterns: list[str]) -> Path:
    """A role whose loader needs a file the repo lacks (SAM 2's sam2.json): links to the snapshot + that file.

    The hub cache is left as huggingface_hub wrote it; the view lives in the varireal cache.
    """
    source = {p.relative_to(snapshot).as_posix(): p for p in model_files(snapshot, patterns)}
    view = (
        cache_root() / "hub" / role / f"{spec.revision}-{files_key({k: str(v.resolve()) for k, v in source.items()})}"
    )
    if (view / MARKER).is_file():
        return view
    staging = _staging(view.parent, ".view-")
    try:
        for rel, path in source.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).symlink_to(path.resolve())
        ROLES[role].finish_hub(staging, spec)  # type: ignore[misc]
        files = file_hashes(staging)
        _seal(staging, files)
        return _place(staging, view, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hub_repair(spec: ModelSpec, model_dir: Path, names: list[str]) -> str:
    """How to replace damaged files of a hub role (and what to do when the lock is what is wrong)."""
    include = " ".join(f"--include '{name}'" for name in names)
    view = (
        f" or delete {model_dir} (links and generated files, remade on the next run),"
        if model_dir.is_relative_to(cache_root())
        else ""
    )
    return (
        f"Repair: download them again (huggingface_hub checks sizes, not hashes, so a damaged download stays):\n"
        f"  hf download {spec.repo_id} --revision {spec.revision} {include} --force-download --cache-dir {hub.hub_cache()}\n"
        f"or remove the repo from the cache (`hf cache rm model/{spec.repo_id}`) and rerun,{view} "
        "or, if the lock itself is wrong (written from other files), rerun `dvc repro models -f`"
    )


def _blob_checks(present: Mapping[str, Path], found: Mapping[str, str]) -> list[FileCheck]:
    """Large files lie in the HF cache as blobs/<sha256 the hub gave>: their bytes must hash to that name."""
    checks = []
    for name, path in present.items():
        target = path.resolve()
        if target.parent.name == "blobs" and SHA256.fullmatch(target.name):
            checks.append(FileCheck(name, target.name, found[name]))
    return checks


def hub_dir(role: str, spec: ModelSpec) -> tuple[Path, dict[str, str]]:
    """The role's files at the pinned commit from the HF cache (downloaded first if missing), and the
    sha256 of their bytes (a blob whose bytes are not its name is refused: a damaged download)."""
    kind = ROLES[role]
    patterns = hub_patterns(role, spec)
    # A view's own problems (e.g. no sam2.json yet) are not the snapshot's: it is checked after.
    snapshot = hub.snapshot(role, spec, patterns, None if kind.finish_hub else kind.problems)
    model_dir = _view(role, spec, snapshot, patterns) if kind.finish_hub is not None else snapshot
    present = on_disk(model_dir, None if kind.finish_hub is not None else patterns)
    files = hash_files(present)
    damaged = wrong_files(_blob_checks(present, files))
    if damaged:
        raise _mismatch(
            role,
            model_dir,
            damaged,
            "the hub (the blob's name)",
            hub_repair(spec, model_dir, [check.name for check in damaged]),
        )
    problems = kind.problems(model_dir)
    if problems:
        raise MissingWeightsError(
            f"{role}: {spec.repo_id}@{spec.revision} with allow_patterns {patterns} lacks: {'; '.join(problems)}; "
            f"widen allow_patterns for this role.\n{hub.how_to_provide(spec, patterns)}"
        )
    return model_dir, files


def _hub_for_lock(role: str, record: Mapping[str, Any]) -> Path:
    spec = ModelSpec.model_validate(record["spec"])
    model_dir, found = hub_dir(role, spec)
    wrong = wrong_files(compare(found, record["files"]))
    if wrong:
        raise _mismatch(
            role,
            model_dir,
            wrong,
            f"the lock of {spec.repo_id}@{spec.revision}",
            hub_repair(spec, model_dir, [check.name for check in wrong]),
        )
    return model_dir


def locate(role: str, record: Mapping[str, Any]) -> tuple[Path | None, list[str] | None]:
    """Where the role's files lie on this machine now, without building or downloading anything
    (None when they are not here), and the patterns that pick the role's files there."""
    spec = ModelSpec.model_validate(record["spec"])
    if record.get("source") == "tiny":
        model_dir = cache_root() / "tiny" / role / files_key(record["files"])
        return (model_dir if model_dir.is_dir() else None), None
    snapshot = Path(hub.hub_cache()) / f"models--{spec.repo_id.replace('/', '--')}" / "snapshots" / str(spec.revision)  # type: ignore[union-attr]
    if not snapshot.is_dir():
        return None, None
    if ROLES[role].finish_hub is not None:  # links to the snapshot plus generated files: made here, nothing fetched
        return _view(role, spec, snapshot, hub_patterns(role, spec)), None
    return snapshot, hub_patterns(role, spec)


# --- what stages call -----------------------------------------------------------------------------


def resolve(role: str, spec: ModelSpec) -> tuple[Path, dict[str, str]]:
    """For the `models` stage: the role's directory and the hashes of its files (built or fetched now)."""
    return build_tiny(role, spec) if spec.source == "tiny" else hub_dir(role, spec)


def materialize(role: str, record: Mapping[str, Any]) -> Path:
    """For the stages that load a role: a directory with exactly the locked bytes, each file's sha256
    checked against the lock (through the memo). A damaged tiny build is rebuilt, said on stderr; a
    damaged hub file raises WeightsMismatchError naming the file, both hashes and the repair."""
    if record.get("source") == "tiny":
        return _tiny_for_lock(role, record)
    return _hub_for_lock(role, record)
