"""The classifier is the CLIP the reference trains: OpenAI's ViT-B/16 with QuickGELU, its prompt and its logits.

The reference loads the model with `clip.load` (OpenAI's own code, QuickGELU in every MLP); we load open_clip
from a `local-dir:` copy of timm/vit_base_patch16_clip_224.openai, a path that takes the activation from the
copy's open_clip_config.json alone. `openai-clip` (OpenAI's code, a dev dependency) is the oracle here, built
from its own config with random weights: nothing is downloaded. Its package __init__ needs pkg_resources,
so its model.py is loaded on its own.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_repo import REPO
from reference_code import load
from safetensors.torch import save_file

from varireal.finetune.model import ClipClassifier, class_prompts
from varireal.models.clip import CONFIG_FILE, OPENAI_MEAN, OPENAI_STD, WEIGHTS_FILE, load_clip
from varireal.settings.whole import load_all_params

pytestmark = pytest.mark.reference

# OpenAI's ViT-B/16 (clip/clip.py _MODELS, its state dict's shapes): embed 512, 224 px, 12 x 768 vision
# layers of patch 16, 77 tokens of a 49,408 vocabulary, 12 x 512 text layers of 8 heads.
VIT_B_16 = (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12)
SMALL = (32, 32, 2, 64, 8, 77, 49408, 64, 2, 2)  # the same layout at a size a CPU test runs in a second


def oracle_module():
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("openai-clip (OpenAI's CLIP code, a dev dependency) is not installed: sh tools/uv.sh sync")
    path = Path(spec.submodule_search_locations[0]) / "model.py"
    loaded = importlib.util.spec_from_file_location("openai_clip_model", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def open_clip_config(args: tuple, quick_gelu: bool | None) -> dict:
    """open_clip's model_cfg for OpenAI's CLIP(*args), with quick_gelu set, unset (None) or off."""
    embed, image, v_layers, v_width, patch, context, vocab, t_width, t_heads, t_layers = args
    cfg = {
        "embed_dim": embed,
        "vision_cfg": {"image_size": image, "layers": v_layers, "width": v_width, "patch_size": patch},
        "text_cfg": {
            "context_length": context,
            "vocab_size": vocab,
            "width": t_width,
            "heads": t_heads,
            "layers": t_layers,
        },
    }
    return cfg if quick_gelu is None else {**cfg, "quick_gelu": quick_gelu}


def model_dir(tmp_path: Path, oracle: torch.nn.Module, args: tuple, quick_gelu: bool | None) -> Path:
    """The oracle's weights in the layout of the hub repo we load (open_clip_config.json + safetensors)."""
    folder = tmp_path / f"clip-{quick_gelu}"
    folder.mkdir()
    preprocess = {
        "mean": list(OPENAI_MEAN),
        "std": list(OPENAI_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    (folder / CONFIG_FILE).write_text(
        json.dumps({"model_cfg": open_clip_config(args, quick_gelu), "preprocess_cfg": preprocess})
    )
    save_file({name: t.contiguous() for name, t in oracle.state_dict().items()}, str(folder / WEIGHTS_FILE))
    return folder


def test_the_openai_config_is_openais_model_layer_for_layer():
    """Full ViT-B/16 on the meta device: the same parameters, shapes and layer kinds as OpenAI's own model."""
    import open_clip

    module = oracle_module()
    with torch.device("meta"):
        oracle = module.CLIP(*VIT_B_16)
        ours = open_clip.model.CLIP(**open_clip_config(VIT_B_16, quick_gelu=True))
    assert open_clip.get_model_config("ViT-B-16") == open_clip_config(VIT_B_16, quick_gelu=None)
    theirs = {name: tuple(t.shape) for name, t in oracle.state_dict().items()}
    assert {name: tuple(t.shape) for name, t in ours.state_dict().items()} == theirs
    activations = {name: type(m).__name__ for name, m in ours.named_modules() if name.endswith("mlp.gelu")}
    assert len(activations) == 24 and set(activations.values()) == {"QuickGELU"}
    assert {name for name, m in oracle.named_modules() if type(m).__name__ == "QuickGELU"} == set(activations)


@pytest.mark.parametrize("written", [None, True, False], ids=["config-silent", "config-quick", "config-gelu"])
def test_the_paper_activation_gives_openais_outputs_whatever_the_config_says(tmp_path, written):
    activation = load_all_params(REPO / "params.yaml", ["profile=paper"]).train.pick("paper", "oxford_pets").activation
    assert activation == "quick_gelu"
    module = oracle_module()
    torch.manual_seed(0)
    oracle = module.CLIP(*SMALL).eval()
    folder = model_dir(tmp_path, oracle, SMALL, written)
    ours, _, tokenizer = load_clip(folder, "cpu", quick_gelu=True)
    images = torch.randn(2, 3, 32, 32)
    tokens = tokenizer(["a pet photo of a Abyssinian", "a pet photo of a beagle"])
    with torch.no_grad():
        assert torch.allclose(ours.encode_image(images), oracle.encode_image(images), atol=1e-5)
        assert torch.allclose(ours.encode_text(tokens), oracle.encode_text(tokens), atol=1e-5)
        assert torch.equal(ours.logit_scale, oracle.logit_scale)
    if written is None:  # the risk the switch removes: a config that names no activation builds nn.GELU
        plain, _, _ = load_clip(folder, "cpu")
        with torch.no_grad():
            assert (plain.encode_image(images) - oracle.encode_image(images)).abs().max() > 1e-3


def test_the_classifier_logits_are_the_references_forward(tmp_path):
    """Finetune/classify/models/clip.py: logit_scale.exp() x cos(image, "a pet photo of a {class}") per class."""
    module = oracle_module()
    torch.manual_seed(1)
    oracle = module.CLIP(*SMALL).eval()
    found = load(
        "Finetune/classify/models/clip.py",
        ["CLIP.forward_image", "CLIP.forward_text", "CLIP.forward", "get_dataset_name_for_template"],
        {"torch": torch},
    )
    templates = load("Finetune/classify/util_data.py", ["TEMPLATES_SMALL"])["TEMPLATES_SMALL"]
    classes = ["Abyssinian", "american bulldog", "Bengal"]
    train = load_all_params(REPO / "params.yaml", ["profile=paper"]).train.pick("paper", "oxford_pets")
    prefix = found["get_dataset_name_for_template"]("oxford_pets")
    prompts = class_prompts(classes, train.template, "pet")
    assert prompts == [templates[0].format(prefix, name) for name in classes]

    clip, preprocess, tokenizer = load_clip(model_dir(tmp_path, oracle, SMALL, None), "cpu", quick_gelu=True)
    ours = ClipClassifier(clip, tokenizer, classes, prompts, {**preprocess, "size": 32}).eval()
    reference = type("CLIP", (), {k.split(".")[-1]: v for k, v in found.items() if k.startswith("CLIP.")})()
    reference.clip, reference.is_lora_text = oracle, False
    reference.tokenized_text = tokenizer(prompts)[:, None, :]  # (classes, templates, tokens), as tokenize_text
    images = torch.from_numpy(np.random.default_rng(2).normal(size=(4, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(ours(images), reference.forward(images), atol=1e-4)
