"""Diffusion roles: SD 2.1 text-to-image, SDXL inpainting, and the SDXL ControlNet + IP-Adapter regenerator.

Roles and the hub layout each one reads (tiny builds write the same layout, with tiny random weights):

- text2image  a StableDiffusionPipeline repo (stabilityai/stable-diffusion-2-1-base): model_index.json + one
              folder per component (unet, vae, text_encoder, tokenizer, scheduler, feature_extractor)
- inpaint     a StableDiffusionXLInpaintPipeline repo (diffusers/stable-diffusion-xl-1.0-inpainting-0.1):
              the SDXL layout, two text encoders and tokenizers, a 9-channel UNet
- regen_base  an SDXL base repo (SG161222/RealVisXL_V4.0), run as a StableDiffusionXLControlNetPipeline
- controlnet  a ControlNetModel folder (diffusers/controlnet-canny-sdxl-1.0)
- regen_vae   an AutoencoderKL folder (madebyollin/sdxl-vae-fp16-fix), swapped into the regenerator
- ip_adapter  the h94/IP-Adapter layout: sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors (Resampler image
              projection + per-cross-attention to_k_ip/to_v_ip) and a CLIPVisionModelWithProjection in
              models/image_encoder/

Loading never touches the network (`local_files_only=True`, safetensors only): fp32 on CPU, fp16 on a GPU.
Tiny sizes: 64 px images, a VAE with two downsamplings (latents of 16 x 16), UNets with two blocks of 32 and
64 channels, CLIP text encoders of width 32 with a byte-level CLIP tokenizer (any text tokenizes).
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from varireal.io import write_bytes, write_json
from varireal.models.errors import ModelDirError
from varireal.models.kind import RoleKind, patterns
from varireal.models.load import check_model_dir
from varireal.models.tiny import _empty_dir, quiet_progress, seeded

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

# --- tiny sizes ---------------------------------------------------------------------------------

TINY_IMAGE_SIZE = 64  # px
TINY_VAE_SCALE = 4  # the tiny VAE downsamples twice: 16 x 16 latents, cheap enough for tests on a CPU
TINY_LATENT_SIZE = TINY_IMAGE_SIZE // TINY_VAE_SCALE
TINY_TEXT_WIDTH = 32  # hidden size of each tiny CLIP text encoder
TINY_TIME_EMBED = 8  # SDXL micro-conditioning: 6 numbers (sizes, crop) of 8 features each
SDXL_CROSS_ATTENTION = 2 * TINY_TEXT_WIDTH  # SDXL concatenates both text encoders' hidden states
SDXL_ADD_EMBED_DIM = 6 * TINY_TIME_EMBED + TINY_TEXT_WIDTH  # time ids + the pooled text embedding
TINY_IMAGE_ENCODER_WIDTH = 32
TINY_IP_TOKENS = 4  # Resampler queries (16 in ip-adapter-plus_sdxl_vit-h)
RESAMPLER_DEPTH = 4  # diffusers builds the Plus Resampler with its default depth 4: the file must match
RESAMPLER_HEAD_DIM = 64  # diffusers infers heads as to_q rows // 64
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


# --- shared -------------------------------------------------------------------------------------


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No 'Loading pipeline components' bars from diffusers, nor transformers' bars, inside the block."""
    from diffusers.utils import logging as diffusers_logging

    was_enabled = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    try:
        with quiet_progress():
            yield
    finally:
        if was_enabled:
            diffusers_logging.enable_progress_bar()


class _EmptyFp32Notice(logging.Filter):
    """Drops diffusers' warning on every `.to(dtype)` that names *no* module to keep in fp32 ('float32: []')."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def _drop_empty_fp32_notice() -> None:
    """Pipelines cast their VAE/UNet with `.to(dtype)` at every call; the empty notice would flood the stage log."""
    logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _EmptyFp32Notice) for f in logger.filters):
        logger.addFilter(_EmptyFp32Notice())


def _dtype(device: str) -> Any:
    import torch

    # fp16 halves GPU memory (SDXL + ControlNet + image encoder at once); the regenerator's VAE is the fp16-fix
    # one for this. CPUs lack fast fp16 kernels, and fp32 there keeps the tiny tests exact.
    return torch.float32 if device == "cpu" else torch.float16


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
    unet = sdxl_unet_config()
    keep = (
        "in_channels",
        "down_block_types",
        "block_out_channels",
        "layers_per_block",
        "attention_head_dim",
        "use_linear_projection",
        "cross_attention_dim",
        "addition_embed_type",
        "addition_time_embed_dim",
        "projection_class_embeddings_input_dim",
        "norm_num_groups",
    )
    with seeded("controlnet", seed):
        model = ControlNetModel(**{k: unet[k] for k in keep}, conditioning_embedding_out_channels=(16, 32, 32)).eval()
    model.save_pretrained(out_dir)
    return model


def build_tiny_regen_vae(out_dir: Path, seed: int) -> Any:
    """An AutoencoderKL like sdxl-vae-fp16-fix (SDXL scaling, no fp32 upcast needed), into out_dir."""
    out_dir = _empty_dir(out_dir)
    with seeded("regen_vae", seed):
        vae = _tiny_vae(scaling_factor=0.13025, force_upcast=False)
    vae.save_pretrained(out_dir)
    return vae


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


def _cross_attention_shapes(unet_config: dict) -> list[tuple[int, int]]:
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
        for i, (hidden, cross) in enumerate(_cross_attention_shapes(sdxl_unet_config())):
            for name in ("to_k_ip", "to_v_ip"):
                tensors[f"ip_adapter.{2 * i + 1}.{name}.weight"] = torch.nn.Linear(cross, hidden, bias=False).weight
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    write_bytes(out_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT, save(tensors))
    with quiet_progress():
        encoder.save_pretrained(out_dir / IP_ADAPTER_ENCODER)
    return encoder


# --- directory checks ---------------------------------------------------------------------------


def _safetensors(folder: Path, rel: str, filename: str) -> list[str]:
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


def _files(folder: Path, rel: str, *names: str) -> list[str]:
    return [f"{rel}{n}" for n in names if not (folder / n).is_file()]


def component_problems(folder: Path, rel: str, library: str, class_name: str) -> list[str]:
    """What a pipeline component's folder lacks, judged by its class (scheduler, tokenizer, model, ...)."""
    if not folder.is_dir():
        return [f"{rel} ({library} {class_name})"]
    if class_name.endswith("Scheduler"):
        return _files(folder, rel, "scheduler_config.json")
    if "Tokenizer" in class_name:
        if (folder / "tokenizer.json").is_file():
            return _files(folder, rel, "tokenizer_config.json")
        return _files(folder, rel, "tokenizer_config.json", "vocab.json", "merges.txt")
    if class_name.endswith(("ImageProcessor", "FeatureExtractor")):
        return _files(folder, rel, "preprocessor_config.json")
    # diffusers' own models use its file name; transformers models (and e.g. SD 1's safety checker) use theirs
    weights = DIFFUSERS_WEIGHTS if library == "diffusers" else TRANSFORMERS_WEIGHTS
    return [*_files(folder, rel, "config.json"), *_safetensors(folder, rel, weights)]


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
    return [*_files(model_dir, "", "config.json"), *_safetensors(model_dir, "", DIFFUSERS_WEIGHTS)]


def ip_adapter_problems(model_dir: Path) -> list[str]:
    model_dir = Path(model_dir)
    weight = f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}"
    encoder = model_dir / IP_ADAPTER_ENCODER
    return [
        *_files(model_dir, "", weight),
        *_files(encoder, f"{IP_ADAPTER_ENCODER}/", "config.json"),
        *_safetensors(encoder, f"{IP_ADAPTER_ENCODER}/", TRANSFORMERS_WEIGHTS),
    ]


# --- class names for the lock -------------------------------------------------------------------


def pipeline_class(model_dir: Path) -> str:
    return str(json.loads((Path(model_dir) / MODEL_INDEX).read_text())["_class_name"])


def model_class(model_dir: Path) -> str:
    return str(json.loads((Path(model_dir) / "config.json").read_text())["_class_name"])


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


# --- loaders ------------------------------------------------------------------------------------

_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError)


def _cannot_load(role: str, cls: Any, model_dir: Path, err: Exception) -> ModelDirError:
    return ModelDirError(f"{role}: cannot load a {cls.__name__} from {model_dir}: {type(err).__name__}: {err}")


def _load_pipeline(cls: Any, role: str, model_dir: str | Path, device: str, problems: Any, **components: Any) -> Any:
    model_dir = check_model_dir(role, model_dir, problems)
    _drop_empty_fp32_notice()
    try:
        with quiet_loading():
            pipe = cls.from_pretrained(
                model_dir, dtype=_dtype(device), local_files_only=True, use_safetensors=True, **components
            )
    except _LOAD_ERRORS as err:
        raise _cannot_load(role, cls, model_dir, err) from err
    pipe.set_progress_bar_config(disable=True)  # the stage shows its own progress
    return pipe.to(device)


def _load_model(cls: Any, role: str, model_dir: str | Path, device: str) -> Any:
    model_dir = check_model_dir(role, model_dir, diffusers_model_problems)
    _drop_empty_fp32_notice()
    try:
        with quiet_loading():
            model = cls.from_pretrained(model_dir, dtype=_dtype(device), local_files_only=True, use_safetensors=True)
    except _LOAD_ERRORS as err:
        raise _cannot_load(role, cls, model_dir, err) from err
    return model.to(device).eval()


def load_text2image(model_dir: str | Path, device: str, *, role: str = "text2image") -> Any:
    """A StableDiffusionPipeline on `device` (fp32 on CPU, fp16 on a GPU), progress bar off."""
    from diffusers import StableDiffusionPipeline

    return _load_pipeline(StableDiffusionPipeline, role, model_dir, device, sd_problems)


def load_inpaint(model_dir: str | Path, device: str, *, role: str = "inpaint") -> Any:
    """A StableDiffusionXLInpaintPipeline on `device`; no invisible watermark (outputs must not depend on it)."""
    from diffusers import StableDiffusionXLInpaintPipeline

    pipeline = StableDiffusionXLInpaintPipeline
    return _load_pipeline(pipeline, role, model_dir, device, sdxl_problems, add_watermarker=False)


def load_regen_base(model_dir: str | Path, device: str, *, role: str = "regen_base") -> Any:
    """The SDXL base alone, as a StableDiffusionXLPipeline (to check the directory loads)."""
    from diffusers import StableDiffusionXLPipeline

    return _load_pipeline(StableDiffusionXLPipeline, role, model_dir, device, sdxl_problems, add_watermarker=False)


def load_controlnet(model_dir: str | Path, device: str, *, role: str = "controlnet") -> Any:
    from diffusers import ControlNetModel

    return _load_model(ControlNetModel, role, model_dir, device)


def load_regen_vae(model_dir: str | Path, device: str, *, role: str = "regen_vae") -> Any:
    from diffusers import AutoencoderKL

    return _load_model(AutoencoderKL, role, model_dir, device)


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
    except _LOAD_ERRORS as err:
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


def load_ip_adapter_weights(model_dir: str | Path, device: str, *, role: str = "ip_adapter") -> tuple[Any, dict]:
    """(CLIPVisionModelWithProjection on `device`, the checked state dict of `read_ip_adapter`)."""
    from transformers import CLIPVisionModelWithProjection

    state = read_ip_adapter(model_dir, role=role)
    folder = Path(model_dir) / IP_ADAPTER_ENCODER
    try:
        with quiet_progress():
            encoder = CLIPVisionModelWithProjection.from_pretrained(
                folder, dtype=_dtype(device), local_files_only=True, use_safetensors=True
            )
    except _LOAD_ERRORS as err:
        raise ModelDirError(f"{role}: cannot load the image encoder in {folder}: {type(err).__name__}: {err}") from err
    return encoder.to(device).eval(), state


def _check_fit(base_dir: Path, pipe: Any, state: dict, dirs: dict[str, Path]) -> None:
    """The regenerator's parts come from four repos: name the one that does not fit before diffusers fails inside."""
    unet, controlnet, vae = pipe.unet.config, pipe.controlnet.config, pipe.vae.config
    condition_scale = 2 ** (len(controlnet.conditioning_embedding_out_channels) - 1)
    ip_width = state["image_proj"]["proj_out.weight"].shape[0]
    checks = [
        ("controlnet", "cross_attention_dim", controlnet.cross_attention_dim, unet.cross_attention_dim),
        ("controlnet", "condition downsampling", condition_scale, pipe.vae_scale_factor),
        ("regen_vae", "latent_channels", vae.latent_channels, unet.in_channels),
        ("ip_adapter", "Resampler output width", ip_width, unet.cross_attention_dim),
    ]
    for role, what, theirs, needed in checks:
        if theirs != needed:
            raise ModelDirError(
                f"{role}: {what} is {theirs} in {dirs[role]}, but the regen_base in {base_dir} needs {needed}"
            )


def load_regenerator(
    base_dir: str | Path,
    controlnet_dir: str | Path,
    vae_dir: str | Path,
    ip_adapter_dir: str | Path,
    device: str,
) -> Any:
    """A StableDiffusionXLControlNetPipeline: SDXL base + canny ControlNet + the fp16-fix VAE + IP-Adapter Plus.

    Call it with `image=<canny edges>` and `ip_adapter_image=<reference>`; set the adapter's weight with
    `pipe.set_ip_adapter_scale(...)` (1.0 after loading).
    """
    from diffusers import StableDiffusionXLControlNetPipeline

    controlnet = load_controlnet(controlnet_dir, device)
    vae = load_regen_vae(vae_dir, device)
    # Read and check the adapter first: a wrong file fails here with its name, not inside diffusers.
    state = read_ip_adapter(ip_adapter_dir)
    pipe = _load_pipeline(
        StableDiffusionXLControlNetPipeline,
        "regen_base",
        base_dir,
        device,
        sdxl_problems,
        controlnet=controlnet,
        vae=vae,
        add_watermarker=False,
    )
    ip_dir = Path(ip_adapter_dir)
    dirs = {"controlnet": Path(controlnet_dir), "regen_vae": Path(vae_dir), "ip_adapter": ip_dir}
    _check_fit(Path(base_dir), pipe, state, dirs)
    try:
        with quiet_loading():
            pipe.load_ip_adapter(
                str(ip_dir),
                subfolder=IP_ADAPTER_SUBFOLDER,
                weight_name=IP_ADAPTER_WEIGHT,
                image_encoder_folder=IP_ADAPTER_ENCODER,
                local_files_only=True,
            )
    except _LOAD_ERRORS as err:
        raise ModelDirError(
            f"ip_adapter: {ip_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT} does not load into the regen_base UNet "
            f"of {base_dir}: {type(err).__name__}: {err}"
        ) from err
    return pipe


# --- roles --------------------------------------------------------------------------------------

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
