"""Load the pipelines an edit method needs from the models lock, once per stage.

Which lock roles make up each editor is written here once, so the stage, the CLI and the
benchmark load (and fingerprint) the same models.
"""

from __future__ import annotations

import logging
from typing import Any

from varireal.edit.methods import Editors
from varireal.models.lock import Lock

# Lock roles per editor (the regenerator is an SDXL base + canny ControlNet + VAE + IP-Adapter).
EDITOR_ROLES: dict[str, tuple[str, ...]] = {
    "text2image": ("text2image",),
    "inpaint": ("inpaint",),
    "regenerator": ("regen_base", "controlnet", "regen_vae", "ip_adapter"),
}
# The editors each method calls.
METHOD_EDITORS: dict[str, tuple[str, ...]] = {
    "background": ("text2image", "inpaint"),
    "color": ("inpaint", "regenerator"),
    "texture": ("text2image", "inpaint", "regenerator"),
}


class _DropFloat32CastNotice(logging.Filter):
    """diffusers warns on every SDXL call that casts the VAE to float32 (its own force_upcast), even
    when it already is float32; one line per batch would bury the stage's progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32" not in record.getMessage()


def method_roles(attribute: str) -> list[str]:
    if attribute not in METHOD_EDITORS:
        raise ValueError(f"attribute={attribute!r}: expected one of {', '.join(METHOD_EDITORS)}")
    return [role for editor in METHOD_EDITORS[attribute] for role in EDITOR_ROLES[editor]]


def model_info(lock: Lock, attribute: str) -> dict[str, dict[str, Any]]:
    """role -> the lock's record plus its own fingerprint, for resume keys and the manifest."""
    return {role: {**lock.record(role), "fingerprint": lock.fingerprint(role)} for role in method_roles(attribute)}


def load_editors(lock: Lock, attribute: str, device: str, *, offload: bool = False, compile: bool = False) -> Editors:
    """Only the pipelines this method calls; each is loaded once and quietened (tqdm per stage, not per call).

    offload: keep each model on the CPU until its turn (diffusers' model CPU offload, as the reference
    runs); compile: torch.compile the denoisers (UNet, ControlNet), compiled at the first batch.
    """
    from varireal.models import diffusion

    if offload and not device.startswith("cuda"):
        raise ValueError(
            f"edit offload=true needs a CUDA device; got device={device!r} (offload moves models to the GPU in turn)"
        )
    cast_logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _DropFloat32CastNotice) for f in cast_logger.filters):
        cast_logger.addFilter(_DropFloat32CastNotice())
    needed = METHOD_EDITORS.get(attribute)
    if needed is None:
        raise ValueError(f"attribute={attribute!r}: expected one of {', '.join(METHOD_EDITORS)}")
    loaded: dict[str, Any] = {}
    if "text2image" in needed:
        loaded["text2image"] = diffusion.load_text2image(lock.path("text2image"), device)
    if "inpaint" in needed:
        loaded["inpaint"] = diffusion.load_inpaint(lock.path("inpaint"), device)
    if "regenerator" in needed:
        loaded["regenerator"] = diffusion.load_regenerator(
            lock.path("regen_base"), lock.path("controlnet"), lock.path("regen_vae"), lock.path("ip_adapter"), device
        )
    for pipe in loaded.values():
        pipe.set_progress_bar_config(disable=True)
        if compile:
            _compile_denoisers(pipe)
        if offload:
            pipe.enable_model_cpu_offload(device=device)
    return Editors(**loaded)


def _compile_denoisers(pipe: Any) -> None:
    import torch

    for name in ("unet", "controlnet"):
        if getattr(pipe, name, None) is not None:
            setattr(pipe, name, torch.compile(getattr(pipe, name)))
