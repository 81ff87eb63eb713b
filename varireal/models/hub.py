"""Download a pinned hub revision of one role, or say exactly how to provide it by hand."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from varireal.models.errors import MissingWeightsError
from varireal.models.spec import ModelSpec

HF_LOCAL_CACHE = ".cache"  # what `snapshot_download(local_dir=...)` / `hf download --local-dir` keep beside the files


def offline_mode() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them once, at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(
        f is not None and f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags
    )


def how_to_provide(role: str, spec: ModelSpec, role_dir: Path, patterns: Sequence[str]) -> str:
    include = " ".join(f"--include '{p}'" for p in patterns)
    return (
        "Provide them in one of these ways, then rerun `dvc repro models`:\n"
        "  1. with network access to huggingface.co (and HF_HUB_OFFLINE unset), just rerun: the stage downloads them;\n"
        f"  2. download them with huggingface_hub's CLI, here or on a machine with access (then copy the directory to {role_dir}):\n"
        f"       hf download {spec.repo_id} --revision {spec.revision} --local-dir {role_dir} {include}\n"
        "     (huggingface_hub < 1.0 names it `huggingface-cli download`, same arguments);\n"
        f"  3. or copy the repo's files ({', '.join(patterns)}) at commit {spec.revision} into {role_dir}/"
    )


def missing_weights(
    role: str, spec: ModelSpec, role_dir: Path, patterns: Sequence[str], reason: str
) -> MissingWeightsError:
    return MissingWeightsError(
        f"{role}: weights of {spec.repo_id} at revision {spec.revision} are not in {role_dir} and could not be "
        f"downloaded ({reason}).\n{how_to_provide(role, spec, role_dir, patterns)}"
    )


def _reason(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:300]}"


def download(role: str, spec: ModelSpec, dest: Path, patterns: Sequence[str], role_dir: Path) -> None:
    """`snapshot_download(repo_id, revision=<sha>, local_dir=dest, allow_patterns=patterns)`.

    `dest` is a staging directory (kept between runs, so an interrupted download resumes);
    `role_dir` is only named in the error. Raises MissingWeightsError when nothing can be fetched.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    offline = offline_mode()
    try:
        snapshot_download(
            spec.repo_id,
            revision=spec.revision,
            local_dir=dest,
            allow_patterns=list(patterns),
            local_files_only=offline,
        )
    except (OSError, HfHubHTTPError) as err:  # no network, offline mode, unknown repo/revision, gated, ...
        reason = "HF_HUB_OFFLINE is set, so nothing is fetched" if offline else _reason(err)
        raise missing_weights(role, spec, role_dir, patterns, reason) from err


def local_commits(model_dir: Path) -> set[str]:
    """Commits recorded by `hf download --local-dir` in model_dir/.cache (empty if files were copied by hand)."""
    commits: set[str] = set()
    meta_root = Path(model_dir) / HF_LOCAL_CACHE / "huggingface" / "download"
    for meta in sorted(meta_root.rglob("*.metadata")) if meta_root.is_dir() else []:
        lines = meta.read_text(errors="replace").splitlines()
        if lines and lines[0].strip():
            commits.add(lines[0].strip().lower())
    return commits


def drop_local_cache(model_dir: Path) -> None:
    """Remove huggingface_hub's bookkeeping (timestamps) so the directory holds only the model files."""
    shutil.rmtree(Path(model_dir) / HF_LOCAL_CACHE, ignore_errors=True)
