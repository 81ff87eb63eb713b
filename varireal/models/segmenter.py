"""The segmenter's sam2.json, checked before hydra sees it: a model directory never chooses code to run.

sam2 builds its model with hydra: `build_sam2(config, hydra_overrides_extra=...)` composes one of its
packaged configs with the overrides and calls `hydra.utils.instantiate` on the result, which imports and
calls whatever `_target_` the composed config names. sam2.json feeds that call, and a model directory may
come from a shared cache or a download, so what the file may say is an allow-list, not a blocklist:

- config           one of sam2's packaged configs, `configs/sam2.1/<name>.yaml` or `configs/sam2/<name>.yaml`
- hydra_overrides  `++<key>=<value>` with <key> one of SAM2_OVERRIDE_KEYS (the sizes the tiny build shrinks)
                   and <value> a number or a list of numbers, e.g. `++model.image_encoder.trunk.stages=[1,2,1,1]`
- checkpoint       a plain file name inside the model directory (no '/', no '..', no absolute path)
- image_size       a positive integer

Anything else is refused with ModelDirError naming the file, the entry and what is allowed. The same checks
guard the writer (the tiny build, and the file written beside a downloaded checkpoint) and the params.yaml
settings `sam2_config` / `checkpoint`, so nothing the pipeline writes is refused later.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from varireal.io import write_json
from varireal.models.errors import ModelDirError
from varireal.models.spec import ModelSpec, checkpoint_error, config_error

SAM2_JSON = "sam2.json"
SAM2_JSON_KEYS = ("config", "hydra_overrides", "checkpoint", "image_size")

# Exactly the keys sam2_tiny_overrides (varireal.models.tiny) sets: numeric sizes of the model, nothing that
# names a class, a function or a path. A new tiny override needs its key here (a test checks they agree).
SAM2_OVERRIDE_KEYS = (
    "model.image_size",
    "model.image_encoder.trunk.embed_dim",
    "model.image_encoder.trunk.num_heads",
    "model.image_encoder.trunk.stages",
    "model.image_encoder.trunk.global_att_blocks",
    "model.image_encoder.trunk.window_pos_embed_bkg_spatial_size",
    "model.image_encoder.neck.d_model",
    "model.image_encoder.neck.backbone_channel_list",
    "model.image_encoder.neck.position_encoding.num_pos_feats",
    "model.memory_attention.d_model",
    "model.memory_attention.num_layers",
    "model.memory_attention.layer.d_model",
    "model.memory_attention.layer.dim_feedforward",
    "model.memory_attention.layer.self_attention.embedding_dim",
    "model.memory_attention.layer.self_attention.feat_sizes",
    "model.memory_attention.layer.cross_attention.embedding_dim",
    "model.memory_attention.layer.cross_attention.feat_sizes",
    "model.memory_attention.layer.cross_attention.kv_in_dim",
    "model.memory_encoder.out_dim",
    "model.memory_encoder.in_dim",
    "model.memory_encoder.position_encoding.num_pos_feats",
    "model.memory_encoder.mask_downsampler.embed_dim",
    "model.memory_encoder.fuser.layer.dim",
    "model.memory_encoder.fuser.num_layers",
)
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
NUMERIC_VALUE = re.compile(rf"{_NUMBER}|\[{_NUMBER}(?:,{_NUMBER})*\]")
ALLOWED_OVERRIDES = "++<key>=<number or [n,n,...]> with <key> one of: " + ", ".join(SAM2_OVERRIDE_KEYS)


# --- what is allowed: each check returns why not, or None -------------------------------------


def override_error(override: object) -> str | None:
    """Why one hydra override is refused: its form, its key (the allow-list) or its value (numbers only)."""
    if not isinstance(override, str) or not override.startswith("++") or "=" not in override:
        return f"hydra override {override!r} is not of the form ++<key>=<value>"
    key, value = override[2:].split("=", 1)
    if key not in SAM2_OVERRIDE_KEYS:
        return f"hydra override {override!r} sets {key!r}, which is not an allowed key"
    if not NUMERIC_VALUE.fullmatch(value):
        return f"hydra override {override!r} sets {key!r} to {value!r}, which is not a number or a list of numbers"
    return None


def overrides_error(overrides: object) -> str | None:
    """Every refused override of a list, and once what is allowed."""
    if not isinstance(overrides, list):
        return f"hydra_overrides={overrides!r} is not a list of override strings"
    refused = [e for e in map(override_error, overrides) if e is not None]
    return f"{'; '.join(refused)} (allowed: {ALLOWED_OVERRIDES})" if refused else None


def sam2_json_errors(info: dict) -> list[str]:
    """Everything sam2.json says that is not allowed; [] = it may reach hydra."""
    errors = [
        config_error(info.get("config")),
        overrides_error(info.get("hydra_overrides")),
        checkpoint_error(info.get("checkpoint")),
    ]
    size = info.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        errors.append(f"image_size={size!r} is not a positive integer")
    return [e for e in errors if e is not None]


def _refuse(path: Path, errors: list[str]) -> ModelDirError:
    return ModelDirError(
        f"{path}: refused, a model directory may not choose code to run: {'; '.join(errors)}. "
        f"Rebuild the directory with `dvc repro models`, or fix {SAM2_JSON} by hand"
    )


# --- the file ---------------------------------------------------------------------------------


def write_sam2_json(model_dir: Path, config: str, checkpoint: str, image_size: int, overrides: list[str]) -> None:
    """The file load_segmenter reads: which sam2 config, overrides and checkpoint make the model.

    Checked like a file that is read, so a build never writes what a load would refuse.
    """
    path = Path(model_dir) / SAM2_JSON
    info = {"config": config, "hydra_overrides": list(overrides), "checkpoint": checkpoint}
    info["image_size"] = int(image_size)
    errors = sam2_json_errors(info)
    if errors:
        raise _refuse(path, errors)
    write_json(path, info)


def read_sam2_json(model_dir: Path) -> dict:
    """sam2.json, checked against the allow-list before anything reads it.

    ValueError / OSError: the file is unreadable or lacks a key (the directory is incomplete);
    ModelDirError: it is readable but says something that is not allowed.
    """
    path = Path(model_dir) / SAM2_JSON
    info = json.loads(path.read_text())
    if not isinstance(info, dict):
        raise ValueError(f"{path} is not a JSON object")
    missing = [k for k in SAM2_JSON_KEYS if k not in info]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    errors = sam2_json_errors(info)
    if errors:
        raise _refuse(path, errors)
    return info


# --- the role's hooks: class name, spec check, the file beside a download ----------------------


def compose_sam2_config(config: str, overrides: list[str]) -> Any:
    """sam2's hydra config for `config` + `overrides` (both checked again: this is what reaches hydra)."""
    errors = [e for e in (config_error(config), overrides_error(list(overrides))) if e is not None]
    if errors:
        raise ValueError("; ".join(errors))
    import sam2  # noqa: F401  (initialises hydra's config search path to the sam2 package)
    from hydra import compose

    return compose(config_name=config, overrides=list(overrides))


def segmenter_class(model_dir: Path) -> str:
    info = read_sam2_json(model_dir)
    return str(compose_sam2_config(info["config"], info["hydra_overrides"]).model._target_).rsplit(".", 1)[-1]


def finish_hub_segmenter(model_dir: Path, spec: ModelSpec) -> None:
    """Write sam2.json beside the downloaded checkpoint: the same file the tiny build writes."""
    assert spec.sam2_config is not None and spec.checkpoint is not None
    image_size = int(compose_sam2_config(spec.sam2_config, []).model.image_size)
    write_sam2_json(model_dir, spec.sam2_config, spec.checkpoint, image_size, [])
