"""Load the diffusion roles from local directories: the same code for the tiny builds and the hub weights.

Loading never touches the network (`local_files_only=True`, safetensors only): fp32 on CPU, fp16 on a GPU.
A missing or incomplete directory raises ModelDirError naming the role, the directory and what is missing;
load_regenerator names the role whose files do not fit the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from varireal.models.diffusion_checks import diffusers_model_problems, sd_problems, sdxl_problems
from varireal.models.diffusion_layout import IP_ADAPTER_ENCODER, IP_ADAPTER_SUBFOLDER, IP_ADAPTER_WEIGHT
from varireal.models.errors import LOAD_ERRORS, ModelDirError
from varireal.models.ip_adapter import read_ip_adapter
from varireal.models.load import check_model_dir
from varireal.models.quiet import quiet_progress

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


# --- loaders ------------------------------------------------------------------------------------


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
    except LOAD_ERRORS as err:
        raise _cannot_load(role, cls, model_dir, err) from err
    pipe.set_progress_bar_config(disable=True)  # the stage shows its own progress
    return pipe.to(device)


def _load_model(cls: Any, role: str, model_dir: str | Path, device: str) -> Any:
    model_dir = check_model_dir(role, model_dir, diffusers_model_problems)
    _drop_empty_fp32_notice()
    try:
        with quiet_loading():
            model = cls.from_pretrained(model_dir, dtype=_dtype(device), local_files_only=True, use_safetensors=True)
    except LOAD_ERRORS as err:
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
    except LOAD_ERRORS as err:
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
    except LOAD_ERRORS as err:
        raise ModelDirError(
            f"ip_adapter: {ip_dir / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT} does not load into the regen_base UNet "
            f"of {base_dir}: {type(err).__name__}: {err}"
        ) from err
    return pipe
