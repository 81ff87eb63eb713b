"""Where each diffusion role's files lie: the hub repos' layouts, which the tiny builds write too.

File names, the components a pipeline cannot run without, and the allow_patterns that fetch exactly the
files the loaders read (safetensors only: no fp16 variants, single-file checkpoints or ONNX exports).
"""

from __future__ import annotations

MODEL_INDEX = "model_index.json"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"

# The h94/IP-Adapter files the paper's regenerator uses (ip-adapter-plus_sdxl_vit-h).
IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHT = "ip-adapter-plus_sdxl_vit-h.safetensors"
IP_ADAPTER_ENCODER = "models/image_encoder"

# Components each pipeline cannot run without (model_index.json may list more, e.g. a feature extractor).
SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
SDXL_COMPONENTS = (*SD_COMPONENTS, "text_encoder_2", "tokenizer_2")

# --- hub files each role fetches ----------------------------------------------------------------

SD_FILES = (
    MODEL_INDEX,
    "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json",
    "tokenizer/*.json",
    "tokenizer/merges.txt",
    "text_encoder/config.json",
    f"text_encoder/{TRANSFORMERS_WEIGHTS}",
    "unet/config.json",
    f"unet/{DIFFUSERS_WEIGHTS}",
    "vae/config.json",
    f"vae/{DIFFUSERS_WEIGHTS}",
)
SDXL_FILES = (
    *SD_FILES,
    "tokenizer_2/*.json",
    "tokenizer_2/merges.txt",
    "text_encoder_2/config.json",
    f"text_encoder_2/{TRANSFORMERS_WEIGHTS}",
)
MODEL_FILES = ("config.json", DIFFUSERS_WEIGHTS)
IP_ADAPTER_FILES = (
    f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}",
    f"{IP_ADAPTER_ENCODER}/config.json",
    f"{IP_ADAPTER_ENCODER}/{TRANSFORMERS_WEIGHTS}",
)
