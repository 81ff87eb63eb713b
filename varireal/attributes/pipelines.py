"""The pipelines the edit methods run on (`Editors`), and how each is loaded from the models lock, once per stage.

Every attribute's method receives an `Editors` and calls the pipelines its module names; an edit's
key holds this module (varireal.keys), so a change in how a pipeline is loaded re-keys the edits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lock is passed in; its code decides which files load, not what they make
    from varireal.models.lock import Lock


@dataclass(frozen=True)
class Editors:
    """The loaded pipelines (loaded once per stage; a method uses the ones it needs)."""

    text2image: Any = None  # StableDiffusionPipeline (SD 2.1)
    inpaint: Any = None  # StableDiffusionXLInpaintPipeline
    regenerator: Any = None  # StableDiffusionXLControlNetPipeline with an IP-Adapter loaded


# Lock roles per editor (the regenerator is an SDXL base + canny ControlNet + VAE + IP-Adapter).
EDITOR_ROLES: dict[str, tuple[str, ...]] = {
    "text2image": ("text2image",),
    "inpaint": ("inpaint",),
    "regenerator": ("regen_base", "controlnet", "regen_vae", "ip_adapter"),
}


class _DropFloat32CastNotice(logging.Filter):
    """diffusers warns on every SDXL call that casts the VAE to float32 (its own force_upcast), even
    when it already is float32; one line per batch would bury the stage's progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32" not in record.getMessage()


def editor_roles(editors: Sequence[str]) -> list[str]:
    """The lock roles the named editors are made of, in order."""
    return [role for editor in editors for role in EDITOR_ROLES[editor]]


def model_info(lock: Lock, editors: Sequence[str]) -> dict[str, dict[str, Any]]:
    """role -> the lock's record plus its own fingerprint, for resume keys and the manifest."""
    return {role: {**lock.record(role), "fingerprint": lock.fingerprint(role)} for role in editor_roles(editors)}


def load_editors(
    lock: Lock, needed: Sequence[str], device: str, *, offload: bool = False, compile: bool = False
) -> Editors:
    """The named pipelines (an attribute's `editors`), each loaded once and quietened (tqdm per stage, not per call).

    offload: keep each model on the CPU until its turn (diffusers' model CPU offload, as the reference
    runs); compile: torch.compile the denoisers (UNet, ControlNet), compiled at the first batch.
    """
    from varireal.models.diffusion_load import load_inpaint, load_regenerator, load_text2image

    if offload and not device.startswith("cuda"):
        raise ValueError(
            f"edit offload=true needs a CUDA device; got device={device!r} (offload moves models to the GPU in turn)"
        )
    cast_logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _DropFloat32CastNotice) for f in cast_logger.filters):
        cast_logger.addFilter(_DropFloat32CastNotice())
    unknown = [name for name in needed if name not in EDITOR_ROLES]
    if unknown:
        raise ValueError(f"editor {unknown[0]!r}: expected one of {', '.join(EDITOR_ROLES)}")
    loaded: dict[str, Any] = {}
    if "text2image" in needed:
        loaded["text2image"] = load_text2image(lock.path("text2image"), device)
    if "inpaint" in needed:
        loaded["inpaint"] = load_inpaint(lock.path("inpaint"), device)
    if "regenerator" in needed:
        loaded["regenerator"] = load_regenerator(
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
