"""Tiny random-weight diffusion models in the hub repos' layouts: SD 2.1, SDXL inpaint / base, ControlNet, VAE.

Tiny sizes: 64 px images, a VAE with two downsamplings (latents of 16 x 16), UNets with two blocks of 32 and
64 channels, CLIP text encoders of width 32 with a byte-level CLIP tokenizer (any text tokenizes).
Same seed -> byte-identical files; each builder returns what it built. The IP-Adapter's tiny build, which
fits the SDXL UNet built here, is in varireal.models.ip_adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from varireal.io import write_bytes, write_json
from varireal.models.quiet import quiet_progress
from varireal.models.tiny import _empty_dir, seeded

# --- tiny sizes ---------------------------------------------------------------------------------

TINY_IMAGE_SIZE = 64  # px
TINY_VAE_SCALE = 4  # the tiny VAE downsamples twice: 16 x 16 latents, cheap enough for tests on a CPU
TINY_LATENT_SIZE = TINY_IMAGE_SIZE // TINY_VAE_SCALE
TINY_TEXT_WIDTH = 32  # hidden size of each tiny CLIP text encoder
TINY_TIME_EMBED = 8  # SDXL micro-conditioning: 6 numbers (sizes, crop) of 8 features each
SDXL_CROSS_ATTENTION = 2 * TINY_TEXT_WIDTH  # SDXL concatenates both text encoders' hidden states
SDXL_ADD_EMBED_DIM = 6 * TINY_TIME_EMBED + TINY_TEXT_WIDTH  # time ids + the pooled text embedding
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"

SD2_SCHEDULER = {  # PNDM as in stable-diffusion-2-1-base's scheduler_config.json
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}
SDXL_SCHEDULER = {  # Euler as in the SDXL base / inpainting repos
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}


# --- shared pieces ------------------------------------------------------------------------------


def _byte_chars() -> list[str]:
    """GPT-2/CLIP's byte-level alphabet: printable bytes as themselves, the other 68 shifted past U+0100."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return [*map(chr, printable), *(chr(256 + n) for n in range(256 - len(printable)))]


def write_clip_tokenizer(folder: Path, pad_token: str) -> int:
    """vocab.json + merges.txt + configs of a byte-level CLIP tokenizer (the files SD repos ship); returns vocab size.

    Every byte is a token, alone and as a word end ("a</w>"), so any text encodes without unknowns.
    No merges: words are spelled byte by byte. pad_token: "!" (SD 2.x, SDXL's second tokenizer) or CLIP_EOS.
    """
    chars = _byte_chars()
    tokens = [*chars, *(c + "</w>" for c in chars), CLIP_BOS, CLIP_EOS]
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "vocab.json", {token: i for i, token in enumerate(tokens)})
    write_bytes(folder / "merges.txt", b"#version: 0.2\n")
    specials = {"bos_token": CLIP_BOS, "eos_token": CLIP_EOS, "unk_token": CLIP_EOS, "pad_token": pad_token}
    write_json(folder / "special_tokens_map.json", specials)
    write_json(
        folder / "tokenizer_config.json",
        {**specials, "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True},
    )
    return len(tokens)


def _text_config(vocab_size: int, projection_dim: int = TINY_TEXT_WIDTH) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_TEXT_WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,  # SDXL reads the penultimate layer: two is the least that has one
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        hidden_act="gelu",
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )


def _tiny_vae(scaling_factor: float, force_upcast: bool) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,  # each block but the last halves the size
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=TINY_IMAGE_SIZE,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    ).eval()


def sdxl_unet_config(in_channels: int = 4) -> dict:
    """The tiny SDXL UNet: no attention in the first block (as SDXL), text_time micro-conditioning."""
    return {
        "sample_size": TINY_LATENT_SIZE,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
        "cross_attention_dim": SDXL_CROSS_ATTENTION,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": TINY_TIME_EMBED,
        "projection_class_embeddings_input_dim": SDXL_ADD_EMBED_DIM,
        "norm_num_groups": 32,
    }


def controlnet_config(unet: dict, conditioning_channels: tuple[int, ...]) -> dict:
    """A ControlNet's config for a UNet's: a copy of its down path, plus the condition image's embedding."""
    keep = (
        "in_channels",
        "down_block_types",
        "block_out_channels",
        "layers_per_block",
        "attention_head_dim",
        "transformer_layers_per_block",
        "use_linear_projection",
        "cross_attention_dim",
        "addition_embed_type",
        "addition_time_embed_dim",
        "projection_class_embeddings_input_dim",
        "norm_num_groups",
    )
    return {**{k: unet[k] for k in keep if k in unet}, "conditioning_embedding_out_channels": conditioning_channels}


def _save_pipeline(pipe: Any, out_dir: Path, tokenizer_pads: dict[str, str]) -> None:
    """model_index.json + each component in its folder, tokenizers as the vocab.json/merges.txt hub repos ship."""
    pipe.save_config(out_dir)  # model_index.json: the pipeline class and each component's library and class
    for name, component in pipe.components.items():
        if component is None:
            continue
        if name in tokenizer_pads:
            write_clip_tokenizer(out_dir / name, tokenizer_pads[name])
        elif hasattr(component, "save_pretrained"):
            component.save_pretrained(out_dir / name)


def _sdxl_text(vocab_size: int) -> tuple[Any, Any]:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    return CLIPTextModel(_text_config(vocab_size)).eval(), CLIPTextModelWithProjection(_text_config(vocab_size)).eval()


def _load_tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


# --- tiny builders ------------------------------------------------------------------------------


def build_tiny_text2image(out_dir: Path, seed: int) -> Any:
    """A StableDiffusionPipeline of the SD 2.1 base class (PNDM, one CLIP text encoder), into out_dir."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextModel

    out_dir = _empty_dir(out_dir)
    vocab_size = write_clip_tokenizer(out_dir / "tokenizer", pad_token="!")
    with seeded("text2image", seed):
        unet = UNet2DConditionModel(
            sample_size=TINY_LATENT_SIZE,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            cross_attention_dim=TINY_TEXT_WIDTH,
            norm_num_groups=32,
        ).eval()
        vae = _tiny_vae(scaling_factor=0.18215, force_upcast=True)
        text_encoder = CLIPTextModel(_text_config(vocab_size)).eval()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_load_tokenizer(out_dir / "tokenizer"),
        unet=unet,
        scheduler=PNDMScheduler(**SD2_SCHEDULER),
        safety_checker=None,
        feature_extractor=CLIPImageProcessor(),
        requires_safety_checker=False,
    )
    with quiet_progress():
        _save_pipeline(pipe, out_dir, {"tokenizer": "!"})
    return pipe


def _build_sdxl(out_dir: Path, seed: int, role: str, pipeline_class: Any, in_channels: int, **config: Any) -> Any:
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    out_dir = _empty_dir(out_dir)
    vocab_size = write_clip_tokenizer(out_dir / "tokenizer", pad_token=CLIP_EOS)
    write_clip_tokenizer(out_dir / "tokenizer_2", pad_token="!")
    with seeded(role, seed):
        unet = UNet2DConditionModel(**sdxl_unet_config(in_channels)).eval()
        vae = _tiny_vae(scaling_factor=0.13025, force_upcast=True)
        text_encoder, text_encoder_2 = _sdxl_text(vocab_size)
    pipe = pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=_load_tokenizer(out_dir / "tokenizer"),
        tokenizer_2=_load_tokenizer(out_dir / "tokenizer_2"),
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        add_watermarker=False,
        **config,
    )
    with quiet_progress():
        _save_pipeline(pipe, out_dir, {"tokenizer": CLIP_EOS, "tokenizer_2": "!"})
    return pipe


def build_tiny_inpaint(out_dir: Path, seed: int) -> Any:
    """A StableDiffusionXLInpaintPipeline (9-channel UNet: latents, masked-image latents, mask), into out_dir."""
    from diffusers import StableDiffusionXLInpaintPipeline

    return _build_sdxl(out_dir, seed, "inpaint", StableDiffusionXLInpaintPipeline, 9, requires_aesthetics_score=False)


def build_tiny_regen_base(out_dir: Path, seed: int) -> Any:
    """A StableDiffusionXLPipeline (the base the ControlNet and IP-Adapter attach to), into out_dir."""
    from diffusers import StableDiffusionXLPipeline

    return _build_sdxl(out_dir, seed, "regen_base", StableDiffusionXLPipeline, 4)


def build_tiny_controlnet(out_dir: Path, seed: int) -> Any:
    """A ControlNetModel fitting the tiny SDXL UNet; its condition embedding downsamples as much as the VAE."""
    from diffusers import ControlNetModel

    out_dir = _empty_dir(out_dir)
    with seeded("controlnet", seed):
        model = ControlNetModel(**controlnet_config(sdxl_unet_config(), (16, 32, 32))).eval()
    model.save_pretrained(out_dir)
    return model


def build_tiny_regen_vae(out_dir: Path, seed: int) -> Any:
    """An AutoencoderKL like sdxl-vae-fp16-fix (SDXL scaling, no fp32 upcast needed), into out_dir."""
    out_dir = _empty_dir(out_dir)
    with seeded("regen_vae", seed):
        vae = _tiny_vae(scaling_factor=0.13025, force_upcast=False)
    vae.save_pretrained(out_dir)
    return vae
