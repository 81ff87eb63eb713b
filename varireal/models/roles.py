"""The registry of model roles: what builds, downloads, checks and loads each one.

Adding a role (a diffusion pipeline, a VLM, CLIP, ...) is one entry in ROLES: a tiny builder
(varireal.models.tiny), a loader and a directory check (varireal.models.load), the hub files to
fetch, and how to name the model class in the lock. Two roles may share one kind's functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from varireal.models import load, tiny
from varireal.models.clip import CLIP_ROLES
from varireal.models.diffusion import DIFFUSION_ROLES
from varireal.models.kind import RoleKind, architecture, patterns
from varireal.models.spec import ModelSpec
from varireal.models.vlm import VLM_ROLES


# --- segmenter (sam2) ---------------------------------------------------------------------------


def _sam2_config(config: str, overrides: list[str]) -> Any:
    import sam2  # noqa: F401  (initialises hydra's config search path to the sam2 package)
    from hydra import compose

    return compose(config_name=config, overrides=list(overrides))


def _segmenter_class(model_dir: Path) -> str:
    info = load.read_sam2_json(model_dir)
    return str(_sam2_config(info["config"], info["hydra_overrides"]).model._target_).rsplit(".", 1)[-1]


def _segmenter_spec(role: str, spec: ModelSpec) -> None:
    if spec.source == "hub":
        for name in ("sam2_config", "checkpoint"):
            if getattr(spec, name) is None:
                example = {"sam2_config": "configs/sam2.1/sam2.1_hiera_l.yaml", "checkpoint": "sam2.1_hiera_large.pt"}[
                    name
                ]
                raise ValueError(f"{role}.{name}: required for source='hub' (e.g. {name}: {example})")
    if spec.sam2_config is not None and not spec.sam2_config.endswith(".yaml"):
        raise ValueError(
            f"{role}.sam2_config={spec.sam2_config!r}: give a sam2 config file such as configs/sam2.1/sam2.1_hiera_l.yaml"
        )


def _segmenter_finish_hub(model_dir: Path, spec: ModelSpec) -> None:
    """Write sam2.json beside the downloaded checkpoint: the same file the tiny build writes."""
    assert spec.sam2_config is not None and spec.checkpoint is not None
    image_size = int(_sam2_config(spec.sam2_config, []).model.image_size)
    tiny.write_sam2_json(model_dir, spec.sam2_config, spec.checkpoint, image_size, [])


ROLES: dict[str, RoleKind] = {
    "detector": RoleKind(
        build_tiny=lambda out, spec: tiny.build_detector(out, spec.seed),
        load=load.load_detector,
        problems=load.detector_problems,
        class_name=architecture,
        hub_patterns=patterns("*.json", "*.safetensors", "vocab.txt"),
    ),
    "segmenter": RoleKind(
        build_tiny=lambda out, spec: tiny.build_segmenter(out, spec.seed, spec.sam2_config),
        load=load.load_segmenter,
        problems=load.segmenter_problems,
        class_name=_segmenter_class,
        hub_patterns=lambda spec: list(spec.allow_patterns or [spec.checkpoint]),
        spec_fields=frozenset({"sam2_config", "checkpoint"}),
        check_spec=_segmenter_spec,
        finish_hub=_segmenter_finish_hub,
    ),
    "llm": RoleKind(
        build_tiny=lambda out, spec: tiny.build_llm(out, spec.seed),
        load=load.load_llm,
        problems=load.llm_problems,
        class_name=architecture,
        hub_patterns=patterns("*.json", "*.safetensors", "*.txt", "*.jinja"),
    ),
    **DIFFUSION_ROLES,
    **VLM_ROLES,
    **CLIP_ROLES,
}


def load_role(role: str, model_dir: str | Path, device: str) -> Any:
    """Load any registered role's directory with its loader."""
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(sorted(ROLES))}")
    return ROLES[role].load(model_dir, device, role=role)
