"""What a diffusers directory lacks to load ([] = complete), and the class it names for the lock.

Judged from the files alone (model_index.json, each component's config), without importing diffusers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from varireal.models.diffusion_layout import (
    DIFFUSERS_WEIGHTS,
    MODEL_INDEX,
    SD_COMPONENTS,
    SDXL_COMPONENTS,
    TRANSFORMERS_WEIGHTS,
)

# --- directory checks ---------------------------------------------------------------------------


def missing_safetensors(folder: Path, rel: str, filename: str) -> list[str]:
    """[] if folder has `filename`, or its sharded index with every shard; else what is missing."""
    if (folder / filename).is_file():
        return []
    index = folder / f"{filename}.index.json"
    if not index.is_file():
        return [f"{rel}{filename} (or a sharded {filename}.index.json)"]
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (ValueError, KeyError, TypeError) as err:
        return [f"a readable {rel}{index.name} ({err})"]
    return [f"{rel}{s} (weight shard)" for s in shards if not (folder / s).is_file()]


def missing_files(folder: Path, rel: str, *names: str) -> list[str]:
    return [f"{rel}{n}" for n in names if not (folder / n).is_file()]


def component_problems(folder: Path, rel: str, library: str, class_name: str) -> list[str]:
    """What a pipeline component's folder lacks, judged by its class (scheduler, tokenizer, model, ...)."""
    if not folder.is_dir():
        return [f"{rel} ({library} {class_name})"]
    if class_name.endswith("Scheduler"):
        return missing_files(folder, rel, "scheduler_config.json")
    if "Tokenizer" in class_name:
        if (folder / "tokenizer.json").is_file():
            return missing_files(folder, rel, "tokenizer_config.json")
        return missing_files(folder, rel, "tokenizer_config.json", "vocab.json", "merges.txt")
    if class_name.endswith(("ImageProcessor", "FeatureExtractor")):
        return missing_files(folder, rel, "preprocessor_config.json")
    # diffusers' own models use its file name; transformers models (and e.g. SD 1's safety checker) use theirs
    weights = DIFFUSERS_WEIGHTS if library == "diffusers" else TRANSFORMERS_WEIGHTS
    return [*missing_files(folder, rel, "config.json"), *missing_safetensors(folder, rel, weights)]


def pipeline_problems(model_dir: Path, required: tuple[str, ...]) -> list[str]:
    """model_index.json, the required components, and the files of every component it lists."""
    index = model_dir / MODEL_INDEX
    if not index.is_file():
        return [f"{MODEL_INDEX} (a diffusers pipeline: its class and components)"]
    try:
        entries = json.loads(index.read_text())
    except ValueError as err:
        return [f"a readable {MODEL_INDEX} ({err})"]
    problems = [f"{MODEL_INDEX} entry {name!r}" for name in required if not _is_component(entries.get(name))]
    for name, entry in sorted(entries.items()):
        if _is_component(entry):
            problems += component_problems(model_dir / name, f"{name}/", str(entry[0]), str(entry[1]))
    return problems


def _is_component(entry: Any) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)


def sd_problems(model_dir: Path) -> list[str]:
    return pipeline_problems(Path(model_dir), SD_COMPONENTS)


def sdxl_problems(model_dir: Path) -> list[str]:
    return pipeline_problems(Path(model_dir), SDXL_COMPONENTS)


def diffusers_model_problems(model_dir: Path) -> list[str]:
    model_dir = Path(model_dir)
    return [*missing_files(model_dir, "", "config.json"), *missing_safetensors(model_dir, "", DIFFUSERS_WEIGHTS)]


# --- class names for the lock -------------------------------------------------------------------


def pipeline_class(model_dir: Path) -> str:
    return str(json.loads((Path(model_dir) / MODEL_INDEX).read_text())["_class_name"])


def model_class(model_dir: Path) -> str:
    return str(json.loads((Path(model_dir) / "config.json").read_text())["_class_name"])
