"""The IP-Adapter Plus files (h94/IP-Adapter, ip-adapter-plus_sdxl_vit-h): a tiny build, checks, and reading.

The layout: sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors holds a Resampler image projection
(`image_proj.*`) and per-cross-attention `ip_adapter.<n>.to_k_ip/to_v_ip.weight`; a
CLIPVisionModelWithProjection lies in models/image_encoder/. The tiny build fits the tiny SDXL UNet of
varireal.models.diffusion_tiny. The image encoder itself is loaded in varireal.models.diffusion_load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from varireal.io import write_bytes
from varireal.models.diffusion_checks import missing_files, missing_safetensors
from varireal.models.diffusion_layout import (
    IP_ADAPTER_ENCODER,
    IP_ADAPTER_SUBFOLDER,
    IP_ADAPTER_WEIGHT,
    TRANSFORMERS_WEIGHTS,
)
from varireal.models.diffusion_tiny import SDXL_CROSS_ATTENTION, sdxl_unet_config
from varireal.models.errors import LOAD_ERRORS, ModelDirError
from varireal.models.load import check_model_dir
from varireal.models.quiet import quiet_progress
from varireal.models.tiny import _empty_dir, seeded

# Tiny sizes; the Resampler's output width is the tiny SDXL UNet's cross-attention width (SDXL_CROSS_ATTENTION).
TINY_IMAGE_ENCODER_WIDTH = 32
TINY_IP_TOKENS = 4  # Resampler queries (16 in ip-adapter-plus_sdxl_vit-h)
RESAMPLER_DEPTH = 4  # diffusers builds the Plus Resampler with its default depth 4: the file must match
RESAMPLER_HEAD_DIM = 64  # diffusers infers heads as to_q rows // 64


# --- tiny build ---------------------------------------------------------------------------------

# diffusers' IPAdapterPlusImageProjection names -> the original Resampler's (what the h94 files hold).
_RESAMPLER_NAMES = {
    "ln0": "0.norm1",
    "ln1": "0.norm2",
    "attn.to_q": "0.to_q",
    "attn.to_out.0": "0.to_out",
    "ff.0": "1.0",
    "ff.1.net.0.proj": "1.1",
    "ff.1.net.2": "1.3",
}


def resampler_to_original(state: dict) -> dict:
    """A diffusers IPAdapterPlusImageProjection state dict in the original IP-Adapter key layout.

    The inverse of diffusers' `_convert_ip_adapter_image_proj_to_diffusers` for the Plus case: blocks become
    `layers.<i>.0.*` (attention: norm1/norm2, to_q, to_kv = to_k and to_v stacked, to_out) and `layers.<i>.1.*`
    (feed-forward: LayerNorm 0, Linear 1, Linear 3).
    """
    import torch

    out: dict = {}
    for key, value in state.items():
        match = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", key)
        if match is None:
            out[key] = value  # latents, proj_in, proj_out, norm_out keep their names
            continue
        block, name, param = match.groups()
        if name == "attn.to_k":
            value = torch.cat([value, state[f"layers.{block}.attn.to_v.{param}"]], dim=0)
            out[f"layers.{block}.0.to_kv.{param}"] = value
        elif name != "attn.to_v":
            out[f"layers.{block}.{_RESAMPLER_NAMES[name]}.{param}"] = value
    return out


def cross_attention_shapes(unet_config: dict) -> list[tuple[int, int]]:
    """(hidden size, cross-attention dim) of each cross-attention layer, in diffusers' processor order."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # only the layer shapes are needed, not weights
        unet = UNet2DConditionModel(**unet_config)
    shapes = []
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            to_k = unet.get_submodule(name.removesuffix(".processor")).to_k
            shapes.append((to_k.out_features, to_k.in_features))
    return shapes


def build_tiny_ip_adapter(out_dir: Path, seed: int) -> Any:
    """h94/IP-Adapter's layout for the tiny SDXL base: sdxl_models/<plus weights> + models/image_encoder/.

    The weight file holds `image_proj.*` (a Resampler: encoder width -> SDXL cross-attention width) and
    `ip_adapter.<1,3,5,...>.to_k_ip/to_v_ip.weight` (one pair per UNet cross-attention layer, numbered as the
    original IP-Adapter counts all attention processors). Returns the image encoder as built.
    """
    import torch
    from diffusers.models.embeddings import IPAdapterPlusImageProjection
    from safetensors.torch import save
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    out_dir = _empty_dir(out_dir)
    vision = CLIPVisionConfig(
        hidden_size=TINY_IMAGE_ENCODER_WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,  # the Plus projection reads the penultimate hidden states
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=32,
        hidden_act="gelu",
    )
    with seeded("ip_adapter", seed):
        encoder = CLIPVisionModelWithProjection(vision).eval()
        resampler = IPAdapterPlusImageProjection(
            embed_dims=TINY_IMAGE_ENCODER_WIDTH,
            output_dims=SDXL_CROSS_ATTENTION,
            hidden_dims=TINY_IMAGE_ENCODER_WIDTH,
            depth=RESAMPLER_DEPTH,
            dim_head=RESAMPLER_HEAD_DIM,
            heads=1,
            num_queries=TINY_IP_TOKENS,
        )
        tensors = {f"image_proj.{k}": v for k, v in resampler_to_original(resampler.state_dict()).items()}
        for i, (hidden, cross) in enumerate(cross_attention_shapes(sdxl_unet_config())):
            for name in ("to_k_ip", "to_v_ip"):
                tensors[f"ip_adapter.{2 * i + 1}.{name}.weight"] = torch.nn.Linear(cross, hidden, bias=False).weight
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    write_bytes(out_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT, save(tensors))
    with quiet_progress():
        encoder.save_pretrained(out_dir / IP_ADAPTER_ENCODER)
    return encoder


# --- directory check and class name for the lock ------------------------------------------------


def ip_adapter_problems(model_dir: Path) -> list[str]:
    model_dir = Path(model_dir)
    weight = f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}"
    encoder = model_dir / IP_ADAPTER_ENCODER
    return [
        *missing_files(model_dir, "", weight),
        *missing_files(encoder, f"{IP_ADAPTER_ENCODER}/", "config.json"),
        *missing_safetensors(encoder, f"{IP_ADAPTER_ENCODER}/", TRANSFORMERS_WEIGHTS),
    ]


def ip_adapter_projection(keys: list[str] | set[str]) -> str:
    """The diffusers image projection class a weight file's `image_proj.*` keys convert to."""
    names = {k.removeprefix("image_proj.") for k in keys if k.startswith("image_proj.")}
    if "proj.weight" in names:
        return "ImageProjection"
    if "proj.3.weight" in names:
        return "IPAdapterFullImageProjection"
    if "perceiver_resampler.proj_in.weight" in names:
        return "IPAdapterFaceIDPlusImageProjection"
    if "norm.weight" in names:
        return "IPAdapterFaceIDImageProjection"
    return "IPAdapterPlusImageProjection" if "latents" in names else "unknown"


def ip_adapter_class(model_dir: Path) -> str:
    """e.g. 'IPAdapterPlusImageProjection+CLIPVisionModelWithProjection': the projection and the image encoder."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    with safe_open(model_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT, framework="pt") as handle:
        projection = ip_adapter_projection(set(handle.keys()))
    config = json.loads((model_dir / IP_ADAPTER_ENCODER / "config.json").read_text())
    return f"{projection}+{(config.get('architectures') or ['unknown'])[0]}"


# --- reading the weight file --------------------------------------------------------------------


def read_ip_adapter(model_dir: str | Path, *, role: str = "ip_adapter") -> dict:
    """{"image_proj": {...}, "ip_adapter": {...}} from the weight file, checked to be an IP-Adapter Plus that
    fits the image encoder's width (read from its config; the encoder itself is not loaded).

    Split the way diffusers' `load_ip_adapter` splits it; tensors on CPU in the file's dtype.
    """
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig

    model_dir = check_model_dir(role, model_dir, ip_adapter_problems)
    weight = model_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT
    try:
        tensors = load_file(weight)
        encoder = CLIPVisionConfig.from_pretrained(model_dir / IP_ADAPTER_ENCODER, local_files_only=True)
    except LOAD_ERRORS as err:
        raise ModelDirError(f"{role}: cannot read the IP-Adapter in {model_dir}: {type(err).__name__}: {err}") from err
    state: dict[str, dict] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in tensors.items():
        part, _, name = key.partition(".")
        if part in state:
            state[part][name] = value
    projection = ip_adapter_projection(set(tensors))
    has_ip_layers = any(k.endswith("to_k_ip.weight") for k in state["ip_adapter"])
    if projection != "IPAdapterPlusImageProjection" or not has_ip_layers:
        raise ModelDirError(
            f"{role}: {weight} is not an IP-Adapter Plus (found a {projection} image projection and "
            f"{len(state['ip_adapter'])} ip_adapter.* tensors); expected image_proj.latents, image_proj.proj_in.* "
            "and ip_adapter.<n>.to_k_ip/to_v_ip.weight"
        )
    width = state["image_proj"]["proj_in.weight"].shape[1]
    if width != encoder.hidden_size:
        raise ModelDirError(
            f"{role}: the Resampler in {weight} takes {width}-wide image features but the encoder in "
            f"{model_dir / IP_ADAPTER_ENCODER} gives {encoder.hidden_size}"
        )
    return state
