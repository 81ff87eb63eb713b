"""A pinned hub revision of one role in the Hugging Face cache, or exactly how to provide it by hand."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from varireal.models.errors import MissingWeightsError
from varireal.models.spec import ModelSpec


def offline_mode() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them once, at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(
        f is not None and f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags
    )


def hub_cache() -> str:
    """The cache snapshot_download uses: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def how_to_provide(spec: ModelSpec, patterns: Sequence[str]) -> str:
    include = " ".join(f"--include '{p}'" for p in patterns)
    return (
        f"Provide them in the Hugging Face cache of this machine ({hub_cache()}; set HF_HUB_CACHE or HF_HOME to use "
        "another, e.g. a lab-wide one), then rerun:\n"
        "  1. with network access to huggingface.co (and HF_HUB_OFFLINE unset), just rerun: the stage downloads them;\n"
        f"  2. or download them with huggingface_hub's CLI:\n"
        f"       hf download {spec.repo_id} --revision {spec.revision} {include}\n"
        f"     on a machine with access, then copy its cache folder models--{spec.repo_id.replace('/', '--')} "  # type: ignore[union-attr]
        "into this machine's cache"
    )


def missing_weights(role: str, spec: ModelSpec, patterns: Sequence[str], reason: str) -> MissingWeightsError:
    return MissingWeightsError(
        f"{role}: weights of {spec.repo_id} at revision {spec.revision} are not in the Hugging Face cache and could "
        f"not be downloaded ({reason}).\n{how_to_provide(spec, patterns)}"
    )


def _reason(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:300]}"


def _download(spec: ModelSpec, patterns: Sequence[str], local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            spec.repo_id,
            revision=spec.revision,
            cache_dir=hub_cache(),
            allow_patterns=list(patterns),
            local_files_only=local_only,
        )
    )


def snapshot(role: str, spec: ModelSpec, patterns: Sequence[str], problems: Callable[[Path], list[str]] | None) -> Path:
    """The snapshot folder of repo@revision in the HF cache, downloaded (or completed) if needed.

    A snapshot already in the cache is used without asking the hub; one that `problems` finds
    incomplete (an interrupted download) is completed by a download, which resumes. Raises
    MissingWeightsError when nothing can be fetched (no network, offline mode, unknown repo, gated).
    """
    from huggingface_hub.errors import HfHubHTTPError

    try:
        found = _download(spec, patterns, local_only=True)
        if problems is None or not problems(found):
            return found
        lacking = f"the cached snapshot {found} lacks: {'; '.join(problems(found))}"
    except (OSError, HfHubHTTPError):
        lacking = "nothing of it is in the cache"
    if offline_mode():
        raise missing_weights(role, spec, patterns, f"HF_HUB_OFFLINE is set, so nothing is fetched; {lacking}")
    try:
        return _download(spec, patterns, local_only=False)
    except (OSError, HfHubHTTPError) as err:
        raise missing_weights(role, spec, patterns, f"{_reason(err)}; {lacking}") from err
