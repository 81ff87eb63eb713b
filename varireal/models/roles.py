"""The registry of model roles: what builds, downloads, checks and loads each one.

Adding a role (a diffusion pipeline, a VLM, CLIP, ...) is one entry in ROLES: a tiny builder
(varireal.models.tiny), a loader and a directory check (varireal.models.load), the hub files to
fetch, and how to name the model class in the lock. Two roles may share one kind's functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from varireal.models import load, tiny
from varireal.models.spec import ModelSpec


@dataclass(frozen=True)
class RoleKind:
    build_tiny: Callable[[Path, ModelSpec], Any]  # write the tiny model's files into an empty dir
    load: Callable[..., Any]  # (model_dir, device) -> the loaded objects a stage uses
    problems: Callable[[Path], list[str]]  # what a dir lacks to load; [] = complete
    class_name: Callable[[Path], str]  # model class recorded in the lock, read from the files
    hub_patterns: Callable[[ModelSpec], list[str]]  # allow_patterns for snapshot_download
    tiny_version: int = 1  # bump when the tiny builder's output changes: existing builds are redone
    spec_fields: frozenset[str] = field(default_factory=frozenset)  # role-specific ModelSpec fields it takes
    check_spec: Callable[[str, ModelSpec], None] | None = None  # extra checks; raise ValueError
    finish_hub: Callable[[Path, ModelSpec], None] | None = None  # after download / copy: e.g. write sam2.json


def architecture(model_dir: Path) -> str:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return (config.get("architectures") or [config.get("model_type", "unknown")])[0]


def patterns(*default: str) -> Callable[[ModelSpec], list[str]]:
    return lambda spec: list(spec.allow_patterns or default)


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
}


def load_role(role: str, model_dir: str | Path, device: str) -> Any:
    """Load any registered role's directory with its loader."""
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; allowed roles: {', '.join(sorted(ROLES))}")
    return ROLES[role].load(model_dir, device, role=role)
