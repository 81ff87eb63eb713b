"""The roles of the masks and prompts stages: detector (Grounding DINO), segmenter (SAM 2.1), llm.

Their tiny builders are in varireal.models.tiny, their loaders and directory checks in
varireal.models.load, and the segmenter's sam2.json (what it may say, its hydra config) in
varireal.models.segmenter. CORE_ROLES is what varireal.models.roles merges into ROLES.
"""

from __future__ import annotations

from varireal.models import load, tiny
from varireal.models.role_kind import RoleKind, architecture, patterns
from varireal.models.segmenter import finish_hub_segmenter, segmenter_class

CORE_ROLES: dict[str, RoleKind] = {
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
        class_name=segmenter_class,
        hub_patterns=lambda spec: list(spec.allow_patterns or [spec.checkpoint]),
        finish_hub=finish_hub_segmenter,
    ),
    "llm": RoleKind(
        build_tiny=lambda out, spec: tiny.build_llm(out, spec.seed),
        load=load.load_llm,
        problems=load.llm_problems,
        class_name=architecture,
        hub_patterns=patterns("*.json", "*.safetensors", "*.txt", "*.jinja"),
    ),
}
