"""The classifier role `clip`: OpenAI CLIP ViT-B/16 through open_clip, or a tiny random CLIP.

Both profiles are one open_clip directory: `open_clip_config.json` (model_cfg + preprocess_cfg)
and `open_clip_model.safetensors`, the layout of the hub repo open_clip itself uses for
(`ViT-B-16`, `openai`): timm/vit_base_patch16_clip_224.openai. Both load through
`open_clip.create_model_from_pretrained("local-dir:<dir>")`, which never touches the network,
and both use open_clip's packaged BPE tokenizer (no tokenizer files to fetch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from varireal.io import write_bytes, write_json
from varireal.models.errors import ModelDirError
from varireal.models.load import check_model_dir
from varireal.models.role_kind import RoleKind, patterns
from varireal.models.tiny import _empty_dir, seeded

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
PAPER_REPO = "timm/vit_base_patch16_clip_224.openai"  # open_clip 3.3.0 pretrained.py, ViT-B-16 / openai

# OpenAI CLIP's layout (pre-norm ViT + causal text transformer, QuickGELU) at toy size. The
# vocabulary stays 49408 so open_clip's standard tokenizer works unchanged.
TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_PREPROCESS_CFG: dict[str, Any] = {
    "mean": list(OPENAI_MEAN),
    "std": list(OPENAI_STD),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def build_tiny_clip(out_dir: str | Path, seed: int) -> Any:
    """A random open_clip CLIP (ViT 32 px, patch 8, width 64; text width 32; 2 layers each) into out_dir.

    Same seed -> byte-identical files. Returns the model as built (in memory).
    """
    from open_clip.model import CLIP
    from safetensors.torch import save

    out_dir = _empty_dir(out_dir)
    with seeded("clip", seed):
        model = CLIP(**TINY_MODEL_CFG).eval()
    tensors = {name: t.contiguous() for name, t in model.state_dict().items()}
    write_bytes(out_dir / WEIGHTS_FILE, save(tensors, metadata={"format": "pt"}))
    write_json(out_dir / CONFIG_FILE, {"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": TINY_PREPROCESS_CFG})
    return model


def read_config(model_dir: Path) -> dict:
    """open_clip_config.json; ValueError naming the file unless it has a model_cfg."""
    path = Path(model_dir) / CONFIG_FILE
    config = json.loads(path.read_text())
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
        raise ValueError(f"{path} has no 'model_cfg' object")
    return config


def clip_problems(model_dir: Path) -> list[str]:
    if not (model_dir / CONFIG_FILE).is_file():
        return [f"{CONFIG_FILE} (open_clip model_cfg + preprocess_cfg)"]
    try:
        config = read_config(model_dir)
    except (ValueError, OSError) as err:
        return [f"a readable {CONFIG_FILE} ({err})"]
    problems = [] if (model_dir / WEIGHTS_FILE).is_file() else [f"weights {WEIGHTS_FILE}"]
    hf_tokenizer = config["model_cfg"].get("text_cfg", {}).get("hf_tokenizer_name")
    if hf_tokenizer and not (model_dir / "tokenizer.json").is_file():
        # open_clip then reads a Hugging Face tokenizer from this very directory
        problems.append("tokenizer.json (the config names an hf_tokenizer_name)")
    return problems


def clip_class(model_dir: Path) -> str:
    """The open_clip class create_model builds from this config (as its factory decides)."""
    cfg = read_config(model_dir)["model_cfg"]
    if cfg.get("custom_text") or "hf_model_name" in cfg.get("text_cfg", {}):
        return "CoCa" if "multimodal_cfg" in cfg else "CustomTextCLIP"
    return "CLIP"


def load_clip(
    model_dir: str | Path, device: str, *, role: str = "clip", quick_gelu: bool = False
) -> tuple[Any, dict, Any]:
    """(model, preprocess_cfg, tokenizer): an fp32 open_clip CLIP in eval mode on `device`.

    preprocess_cfg has size, mean, std, interpolation, resize_mode (open_clip's PreprocessCfg);
    tokenizer maps a list of strings to a LongTensor (n, context_length).
    quick_gelu: every MLP runs OpenAI's QuickGELU, x * sigmoid(1.702 x), whatever the config says. The
    `local-dir:` path reads the activation from open_clip_config.json alone (not from open_clip's `openai`
    tag), and a config that names none builds nn.GELU, which OpenAI's weights were not trained with.
    """
    import open_clip
    import torch

    model_dir = check_model_dir(role, model_dir, clip_problems)
    name = f"local-dir:{model_dir}"
    try:
        # create_model initialises random weights before loading the file: keep the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            model = open_clip.create_model_from_pretrained(
                name, device=device, return_transform=False, force_quick_gelu=quick_gelu
            )
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, ValueError, KeyError, OSError) as err:
        raise ModelDirError(f"{role}: cannot load an open_clip model from {model_dir}: {err}") from err
    if type(model).__name__ != "CLIP":
        raise ModelDirError(
            f"{role}: {model_dir} holds an open_clip {type(model).__name__}; the classifier needs a CLIP "
            "(OpenAI-style ViT + text transformer) such as ViT-B-16 / openai"
        )
    preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
    return model.eval(), preprocess_cfg, tokenizer


CLIP_ROLES: dict[str, RoleKind] = {
    "clip": RoleKind(
        build_tiny=lambda out, spec: build_tiny_clip(out, spec.seed),
        load=load_clip,
        problems=clip_problems,
        class_name=clip_class,
        hub_patterns=patterns(CONFIG_FILE, WEIGHTS_FILE),
    ),
}
