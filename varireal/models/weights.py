"""Where each role's weights lie on this machine: outside every workspace, shared by all of them.

- hub roles: the standard Hugging Face cache (`HF_HUB_CACHE`, default ~/.cache/huggingface/hub),
  at the pinned commit, so clones, queued experiments and other projects share one download;
- tiny roles: built from their seed into the varireal cache (`VARIREAL_CACHE`, default
  $XDG_CACHE_HOME/varireal or ~/.cache/varireal), one directory per distinct set of file hashes.

The `models` stage writes only the lock (what each role is, down to the sha256 of every file);
a stage asks for the roles it uses and gets a directory holding exactly those bytes: found in
the cache, or built / downloaded on demand and checked against the lock. So a clone that pulled
the lock, or a queued experiment in a temporary copy, rebuilds and downloads nothing it has.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from varireal.io import write_json
from varireal.models import hub
from varireal.models.errors import LockError, MissingWeightsError, ModelDirError
from varireal.models.roles import ROLES
from varireal.models.spec import ModelSpec

CACHE_ENV = "VARIREAL_CACHE"
MARKER = "varireal_model.json"
# Packages whose versions decide the bytes of a tiny build and how every model loads.
PACKAGES = (
    "torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "sam2", "hydra-core", "diffusers",
    "open-clip-torch", "peft",
)
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cache_root() -> Path:
    """The varireal cache of this machine (tiny builds, views of hub snapshots)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "varireal"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# --- files ----------------------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_files(model_dir: Path, patterns: list[str] | None = None) -> list[Path]:
    """The model's regular files (symlinks followed), sorted, without our marker; only `patterns` if given."""
    from huggingface_hub.utils import filter_repo_objects

    paths = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and p.relative_to(model_dir).parts[0] != MARKER]
    if patterns:
        paths = list(filter_repo_objects(paths, allow_patterns=patterns, key=lambda p: p.relative_to(model_dir).as_posix()))
    return paths


def file_hashes(model_dir: str | Path, patterns: list[str] | None = None) -> dict[str, str]:
    """{relative posix path: sha256} of the model's files, sorted by path."""
    model_dir = Path(model_dir)
    return {p.relative_to(model_dir).as_posix(): _known_sha256(p) for p in model_files(model_dir, patterns)}


def _known_sha256(path: Path) -> str:
    """The hub cache names large-file blobs by their sha256: no need to read tens of GB to know it."""
    target = path.resolve()
    if target.parent.name == "blobs" and SHA256.fullmatch(target.name):
        return target.name
    return sha256_file(target)


def sizes(model_dir: Path) -> dict[str, int]:
    return {p.relative_to(model_dir).as_posix(): p.stat().st_size for p in model_files(model_dir)}


def files_key(files: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(files), sort_keys=True).encode()).hexdigest()[:24]


def _place(staging: Path, final: Path, files: Mapping[str, str]) -> Path:
    """Rename a finished directory into place. If another process was first, keep theirs (same
    bytes); a damaged one is moved aside and replaced."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir():
        if _complete(final, files):
            shutil.rmtree(staging, ignore_errors=True)
            return final
        damaged = Path(tempfile.mkdtemp(dir=final.parent, prefix=".damaged-"))
        os.replace(final, damaged / final.name)
        shutil.rmtree(damaged, ignore_errors=True)
    try:
        os.replace(staging, final)
    except OSError:
        if not _complete(final, files):  # lost a race to a concurrent build: theirs must be whole
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return final


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


def _seal(model_dir: Path, files: Mapping[str, str]) -> None:
    write_json(model_dir / MARKER, {"files": dict(files), "sizes": sizes(model_dir)})


# --- tiny roles -----------------------------------------------------------------------------------


def tiny_spec_key(role: str, spec: ModelSpec) -> str:
    parts = {"role": role, "spec": spec.model_dump(mode="json"), "tiny_version": ROLES[role].tiny_version,
             "packages": package_versions()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def build_tiny(role: str, spec: ModelSpec) -> tuple[Path, dict[str, str]]:
    """The tiny build of this spec in the cache (built now unless an earlier build is there)."""
    role_root = cache_root() / "tiny" / role
    index = role_root / "specs" / f"{tiny_spec_key(role, spec)}.json"
    try:
        files = json.loads(index.read_text())
        if _complete(role_root / files_key(files), files):
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
    files = record["files"]
    model_dir = cache_root() / "tiny" / role / files_key(files)
    if _complete(model_dir, files):
        return model_dir
    built, built_files = build_tiny(role, ModelSpec.model_validate(record["spec"]))
    if built_files != files:
        changed = sorted(name for name in set(files) | set(built_files) if files.get(name) != built_files.get(name))
        raise LockError(
            f"{role}: the tiny build of seed {record.get('seed')} here differs from the lock in {', '.join(changed)}; "
            "the lock was written with other package versions or another tiny builder. Rerun `dvc repro models -f` "
            "to lock what this machine builds (this changes every result that depends on the role)"
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
    view = cache_root() / "hub" / role / f"{spec.revision}-{files_key({k: str(v.resolve()) for k, v in source.items()})}"
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


def hub_dir(role: str, spec: ModelSpec) -> tuple[Path, dict[str, str]]:
    """The role's files at the pinned commit from the HF cache (downloaded first if missing), and their hashes."""
    kind = ROLES[role]
    patterns = hub_patterns(role, spec)
    # A view's own problems (e.g. no sam2.json yet) are not the snapshot's: it is checked after.
    snapshot = hub.snapshot(role, spec, patterns, None if kind.finish_hub else kind.problems)
    if kind.finish_hub is not None:
        model_dir = _view(role, spec, snapshot, patterns)
        files = file_hashes(model_dir)
    else:
        model_dir, files = snapshot, file_hashes(snapshot, patterns)
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
    if found != record["files"]:
        changed = sorted(name for name in record["files"] if found.get(name) != record["files"][name])
        raise LockError(
            f"{role}: the files of {spec.repo_id}@{spec.revision} in {model_dir} differ from the lock in "
            f"{', '.join(changed[:5])}; remove them from the cache (`hf cache delete`) and rerun, or rerun "
            "`dvc repro models -f` if the lock is what is wrong"
        )
    return model_dir


# --- what stages call -----------------------------------------------------------------------------


def resolve(role: str, spec: ModelSpec) -> tuple[Path, dict[str, str]]:
    """For the `models` stage: the role's directory and the hashes of its files (built or fetched now)."""
    return build_tiny(role, spec) if spec.source == "tiny" else hub_dir(role, spec)


def materialize(role: str, record: Mapping[str, Any]) -> Path:
    """For the stages that load a role: a directory with exactly the locked bytes."""
    if record.get("source") == "tiny":
        return _tiny_for_lock(role, record)
    return _hub_for_lock(role, record)
