"""The paper profile's models at their real sizes, from configs alone: no download, no weights.

Each role's architecture is written out as the hub repo's config has it (SD 2.1 base, SDXL inpaint
and base, canny ControlNet, the fp16-fix VAE, IP-Adapter Plus ViT-H, LLaVA-NeXT Mistral 7B, and
open_clip ViT-B-16), and built on torch's meta device: every tensor has its shape and dtype but no
storage, so the count of parameters and the memory of the weights are exact and cost nothing.
`python -m benchmarks.edit --arch full` prints them per role, per edit method and for the
judge; what needs the weights themselves (seconds per candidate) needs the GPU machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SDXL_TEXT_STATES = 2048  # cross-attention width: CLIP-L (768) + OpenCLIP bigG (1280) hidden states, concatenated


def sdxl_unet_config(in_channels: int = 4) -> dict[str, Any]:
    """stable-diffusion-xl-base-1.0 / -inpainting-0.1 unet/config.json (9 input channels to inpaint)."""
    return {
        "sample_size": 128,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (320, 640, 1280),
        "layers_per_block": 2,
        "attention_head_dim": (5, 10, 20),
        "transformer_layers_per_block": (1, 2, 10),
        "use_linear_projection": True,
        "cross_attention_dim": SDXL_TEXT_STATES,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "norm_num_groups": 32,
    }


def sd21_unet_config() -> dict[str, Any]:
    """stable-diffusion-2-1-base unet/config.json."""
    return {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "attention_head_dim": (5, 10, 20, 20),
        "use_linear_projection": True,
        "cross_attention_dim": 1024,
        "norm_num_groups": 32,
    }


def vae_config(sample_size: int) -> dict[str, Any]:
    """The SD / SDXL AutoencoderKL (the same layout in both; SDXL's fp16-fix VAE too)."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "sample_size": sample_size,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "norm_num_groups": 32,
    }


def _clip_text(hidden: int, layers: int, heads: int, act: str, projection: int) -> dict[str, Any]:
    return {
        "vocab_size": 49408,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "max_position_embeddings": 77,
        "hidden_act": act,
        "projection_dim": projection,
    }


SD21_TEXT = _clip_text(1024, 23, 16, "gelu", 512)  # OpenCLIP ViT-H/14's text tower, last layer dropped
CLIP_L_TEXT = _clip_text(768, 12, 12, "quick_gelu", 768)  # SDXL text_encoder
BIGG_TEXT = _clip_text(1280, 32, 20, "gelu", 1280)  # SDXL text_encoder_2 (with projection)
VIT_H_IMAGE = {  # h94/IP-Adapter models/image_encoder: OpenCLIP ViT-H/14
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
IP_PLUS_TOKENS = 16  # ip-adapter-plus_sdxl_vit-h: Resampler queries
IP_PLUS_HEADS = 20


def llava_next_mistral_config() -> Any:
    """llava-hf/llava-v1.6-mistral-7b-hf config.json: CLIP ViT-L/14 at 336 px + Mistral 7B."""
    from transformers import CLIPVisionConfig, LlavaNextConfig, MistralConfig

    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
    )
    text = MistralConfig(
        vocab_size=32064,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=32768,
        rope_theta=1e6,
    )
    return LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    )


# --- builders on the meta device: role -> its modules ---------------------------------------------


def _unet(config: dict) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**config)


def _vae(sample_size: int) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(**vae_config(sample_size))


def _text(config: dict, projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(CLIPTextConfig(**config))


def _sdxl(in_channels: int, vae: bool = True) -> list[Any]:
    return [
        _unet(sdxl_unet_config(in_channels)),
        *([_vae(1024)] if vae else []),
        _text(CLIP_L_TEXT),
        _text(BIGG_TEXT, projection=True),
    ]


def _controlnet() -> list[Any]:
    from diffusers import ControlNetModel

    from varireal.models.diffusion_tiny import controlnet_config

    return [ControlNetModel(**controlnet_config(sdxl_unet_config(), (16, 32, 96, 256)))]


def _ip_adapter() -> list[Any]:
    """The ViT-H image encoder, the Plus Resampler and one to_k_ip/to_v_ip pair per SDXL cross-attention layer."""
    import torch
    from diffusers.models.embeddings import IPAdapterPlusImageProjection
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from varireal.models.ip_adapter import RESAMPLER_DEPTH, RESAMPLER_HEAD_DIM, cross_attention_shapes

    width = VIT_H_IMAGE["hidden_size"]
    resampler = IPAdapterPlusImageProjection(
        embed_dims=width,
        output_dims=SDXL_TEXT_STATES,
        hidden_dims=width,
        depth=RESAMPLER_DEPTH,
        dim_head=RESAMPLER_HEAD_DIM,
        heads=IP_PLUS_HEADS,
        num_queries=IP_PLUS_TOKENS,
    )
    pairs = [
        torch.nn.Linear(cross, hidden, bias=False)
        for hidden, cross in cross_attention_shapes(sdxl_unet_config())
        for _ in ("to_k_ip", "to_v_ip")
    ]
    return [CLIPVisionModelWithProjection(CLIPVisionConfig(**VIT_H_IMAGE)), resampler, *pairs]


def _vlm() -> list[Any]:
    from transformers import LlavaNextForConditionalGeneration

    return [LlavaNextForConditionalGeneration(llava_next_mistral_config())]


def _clip() -> list[Any]:
    import open_clip

    return [open_clip.create_model("ViT-B-16", pretrained=None, device="meta")]


BUILDERS: dict[str, Callable[[], list[Any]]] = {
    "text2image": lambda: [_unet(sd21_unet_config()), _vae(512), _text(SD21_TEXT)],
    "inpaint": lambda: _sdxl(9),
    "regen_base": lambda: _sdxl(4, vae=False),  # the regenerator decodes with regen_vae: the base's VAE is never loaded
    "controlnet": _controlnet,
    "regen_vae": lambda: [_vae(1024)],
    "ip_adapter": _ip_adapter,
    "vlm": _vlm,
    "clip": _clip,
}


@dataclass(frozen=True)
class RoleSize:
    role: str
    parameters: int

    def gigabytes(self, bytes_per_parameter: int = 2) -> float:
        """The weights' memory at fp16/bf16 (2 bytes) or fp32 (4)."""
        return self.parameters * bytes_per_parameter / 1e9


def role_size(role: str) -> RoleSize:
    """Parameters of a role at its real size, counted on the meta device (no memory, no download)."""
    import torch

    if role not in BUILDERS:
        raise ValueError(f"role={role!r}: no full-size architecture; known: {', '.join(BUILDERS)}")
    with torch.device("meta"):
        modules = BUILDERS[role]()
    return RoleSize(role, sum(p.numel() for module in modules for p in module.parameters()))
