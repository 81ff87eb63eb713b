"""Load a role's local directory: the same code for the tiny builds and the downloaded weights.

Nothing here touches the network: transformers loads with `local_files_only=True`, sam2 builds
from its packaged config and a checkpoint file (read with `torch.load(weights_only=True)` by
sam2's own `_load_checkpoint`), with only what varireal.models.segmenter allows in sam2.json.
A missing or incomplete directory raises ModelDirError naming the role, the directory and what is
missing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from varireal.models.errors import ModelDirError
from varireal.models.quiet import quiet_progress
from varireal.models.segmenter import SAM2_JSON, read_sam2_json

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


# --- directory checks: [] means complete ------------------------------------------------------


def _any(model_dir: Path, names: tuple[str, ...], what: str) -> list[str]:
    return [] if any((model_dir / n).is_file() for n in names) else [f"{what} (one of: {', '.join(names)})"]


def _weights(model_dir: Path) -> list[str]:
    problems = _any(model_dir, WEIGHT_FILES, "weights")
    index = model_dir / "model.safetensors.index.json"
    if not problems and index.is_file() and not (model_dir / "model.safetensors").is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as err:
            return [f"a readable model.safetensors.index.json ({err})"]
        problems += [f"weight shard {s}" for s in shards if not (model_dir / s).is_file()]
    return problems


def detector_problems(model_dir: Path) -> list[str]:
    return [
        *_any(model_dir, ("config.json",), "model config"),
        *_weights(model_dir),
        *_any(model_dir, ("preprocessor_config.json", "processor_config.json"), "image processor config"),
        *_any(model_dir, ("tokenizer.json", "vocab.txt"), "tokenizer vocabulary"),
        *_any(model_dir, ("tokenizer_config.json",), "tokenizer config"),
    ]


def llm_problems(model_dir: Path) -> list[str]:
    problems = [
        *_any(model_dir, ("config.json",), "model config"),
        *_weights(model_dir),
        *_any(model_dir, ("tokenizer_config.json",), "tokenizer config"),
    ]
    if not (model_dir / "tokenizer.json").is_file() and not (
        (model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file()
    ):
        problems.append("tokenizer vocabulary (tokenizer.json, or vocab.json + merges.txt)")
    return problems


def segmenter_problems(model_dir: Path) -> list[str]:
    if not (model_dir / SAM2_JSON).is_file():
        return [f"{SAM2_JSON} (sam2 config name, overrides, checkpoint file, image size)"]
    try:
        info = read_sam2_json(model_dir)
    except ModelDirError:
        raise  # a refused config, override or checkpoint name: say so, rather than call it missing
    except (ValueError, OSError) as err:
        return [f"a readable {SAM2_JSON} ({err})"]
    return (
        []
        if (model_dir / info["checkpoint"]).is_file()
        else [f"checkpoint {info['checkpoint']} (named in {SAM2_JSON})"]
    )


def check_model_dir(role: str, model_dir: str | Path, problems: Callable[[Path], list[str]]) -> Path:
    """Raise ModelDirError (role, directory, what is missing, how to fix) unless the dir is complete."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(
            f"{role}: model directory {model_dir} does not exist; run `dvc repro models` "
            "(or `python -m stages.models`) to build or download it"
        )
    found = problems(model_dir)
    if found:
        raise ModelDirError(
            f"{role}: model directory {model_dir} is incomplete, missing: {'; '.join(found)}. "
            "Rerun `dvc repro models` to rebuild or re-download it"
        )
    return model_dir


def _dtype(device: str, dtype: Any) -> Any:
    import torch

    if dtype is not None:
        return getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    return torch.float32 if device == "cpu" else "auto"


# --- loaders ------------------------------------------------------------------------------------


def load_detector(model_dir: str | Path, device: str, *, role: str = "detector") -> tuple[Any, Any]:
    """(processor, model): a GroundingDinoProcessor and GroundingDinoForObjectDetection in eval mode, fp32."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    model_dir = check_model_dir(role, model_dir, detector_problems)
    try:
        with quiet_progress():
            processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
            model = AutoModelForZeroShotObjectDetection.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelDirError(f"{role}: cannot load a detector from {model_dir}: {err}") from err
    return processor, model.to(device).eval()


def sam2_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """Backbone feature map sizes of SAM 2's three levels (strides 4, 8, 16) at `image_size` px."""
    return [(image_size // s, image_size // s) for s in (4, 8, 16)]


def load_segmenter(model_dir: str | Path, device: str, *, role: str = "segmenter") -> Any:
    """A sam2 SAM2ImagePredictor built by `build_sam2(config, checkpoint)` as sam2.json says."""
    import torch
    from hydra.errors import HydraException
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model_dir = check_model_dir(role, model_dir, segmenter_problems)
    info = read_sam2_json(model_dir)
    checkpoint = model_dir / info["checkpoint"]
    try:
        # build_sam2 initialises random weights before loading the checkpoint: keep the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            model = build_sam2(
                info["config"],
                ckpt_path=str(checkpoint),
                device=device,
                hydra_overrides_extra=list(info["hydra_overrides"]),
            )
    except (RuntimeError, KeyError, HydraException, OSError) as err:
        raise ModelDirError(
            f"{role}: checkpoint {checkpoint} does not load into sam2 config {info['config']!r} with overrides "
            f"{info['hydra_overrides']} (missing or unexpected keys are logged above): {type(err).__name__}: {err}"
        ) from err
    if int(model.image_size) != int(info["image_size"]):
        raise ModelDirError(
            f"{role}: {model_dir / SAM2_JSON} says image_size={info['image_size']} but the built model has {model.image_size}"
        )
    with warnings.catch_warnings():  # sam2's transforms use torch.jit.script, deprecated in torch 2.15
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
        predictor = SAM2ImagePredictor(model)
    predictor._bb_feat_sizes = sam2_feature_sizes(int(model.image_size))
    return predictor


def load_llm(model_dir: str | Path, device: str, *, role: str = "llm", dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer): an AutoModelForCausalLM in eval mode and its tokenizer (with chat template).

    dtype: None -> float32 on CPU, the checkpoint's own dtype ("auto", e.g. bf16) on a GPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = check_model_dir(role, model_dir, llm_problems)
    try:
        with quiet_progress():
            tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=_dtype(device, dtype))
    except (OSError, ValueError, KeyError) as err:
        raise ModelDirError(f"{role}: cannot load a causal LM from {model_dir}: {err}") from err
    if tokenizer.chat_template is None:
        raise ModelDirError(f"{role}: the tokenizer in {model_dir} has no chat template (an instruct model is needed)")
    return model.to(device).eval(), tokenizer
