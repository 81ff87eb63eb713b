"""Diffusion roles: tiny builds in the hub repos' layouts, loaded from disk, generating reproducible 64 px images."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

from varireal.models import diffusion
from varireal.models.diffusion import DIFFUSION_ROLES
from varireal.models.diffusion_layout import IP_ADAPTER_ENCODER, IP_ADAPTER_SUBFOLDER, IP_ADAPTER_WEIGHT
from varireal.models.diffusion_load import load_inpaint, load_regenerator, load_text2image
from varireal.models.errors import ModelDirError
from varireal.models.ip_adapter import TINY_IMAGE_ENCODER_WIDTH, TINY_IP_TOKENS
from varireal.models.lock import file_hashes
from varireal.models.spec import ModelSpec

SIZE = 64
STEPS = 2
CLASS_NAMES = {
    "text2image": "StableDiffusionPipeline",
    "inpaint": "StableDiffusionXLInpaintPipeline",
    "regen_base": "StableDiffusionXLPipeline",
    "controlnet": "ControlNetModel",
    "regen_vae": "AutoencoderKL",
    "ip_adapter": "IPAdapterPlusImageProjection+CLIPVisionModelWithProjection",
}
IP_WEIGHT = f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}"


def build(role: str, out: Path, seed: int):
    return getattr(diffusion, f"build_tiny_{role}")(out, seed)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diffusion")
    for role in DIFFUSION_ROLES:
        build(role, root / role, seed=0)
    return {role: root / role for role in DIFFUSION_ROLES}


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A gradient with a disc: something with edges for the canny control image."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    pixels = np.stack([xx * 4, yy * 4, np.full_like(xx, 90)], -1).astype(np.uint8)
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(200, 40, 40))
    return image


@pytest.fixture(scope="module")
def mask() -> Image.Image:
    image = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=255)
    return image


@pytest.fixture(scope="module")
def canny(photo) -> Image.Image:
    """Edges as the regenerator's control image: white lines on black, 3 channels (like cv2.Canny stacked)."""
    gray = np.asarray(photo.convert("L"), dtype=np.int16)
    edges = (np.abs(np.diff(gray, axis=0, prepend=0)) + np.abs(np.diff(gray, axis=1, prepend=0))) > 40
    return Image.fromarray((edges * 255).astype(np.uint8)).convert("RGB")


@pytest.fixture(scope="module")
def regenerator(dirs):
    return load_regenerator(dirs["regen_base"], dirs["controlnet"], dirs["regen_vae"], dirs["ip_adapter"], "cpu")


def pixels(result) -> np.ndarray:
    (image,) = result.images
    assert isinstance(image, Image.Image) and image.size == (SIZE, SIZE) and image.mode == "RGB"
    return np.asarray(image)


def seeded_call(pipe, seed: int, **kwargs) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(seed)
    return pixels(pipe(num_inference_steps=STEPS, height=SIZE, width=SIZE, generator=generator, **kwargs))


# --- builds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(DIFFUSION_ROLES))
def test_same_seed_builds_identical_bytes_another_seed_other_weights(role, dirs, tmp_path):
    build(role, tmp_path / "again", seed=0)
    assert file_hashes(tmp_path / "again") == file_hashes(dirs[role])
    build(role, tmp_path / "other", seed=1)
    other, first = file_hashes(tmp_path / "other"), file_hashes(dirs[role])
    assert other.keys() == first.keys()
    weights = [name for name in first if name.endswith(".safetensors")]
    assert weights and all(other[name] != first[name] for name in weights)


def test_a_build_refuses_a_directory_with_files(dirs):
    with pytest.raises(FileExistsError, match="empty directory"):
        build("controlnet", dirs["controlnet"], seed=0)


@pytest.mark.parametrize("role", sorted(DIFFUSION_ROLES))
def test_tiny_dir_is_complete_names_its_class_and_is_what_the_hub_patterns_fetch(role, dirs):
    kind = DIFFUSION_ROLES[role]
    assert kind.problems(dirs[role]) == []
    assert kind.class_name(dirs[role]) == CLASS_NAMES[role]
    patterns = kind.hub_patterns(ModelSpec(source="tiny", seed=0))
    # huggingface_hub matches allow_patterns with fnmatch: a download with them gets every file the loader reads
    unmatched = [f for f in file_hashes(dirs[role]) if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert unmatched == []


def test_hub_patterns_skip_fp16_variants_and_single_file_checkpoints():
    patterns = DIFFUSION_ROLES["inpaint"].hub_patterns(ModelSpec(source="tiny", seed=0))
    for unwanted in ("unet/diffusion_pytorch_model.fp16.safetensors", "sd_xl_base_1.0.safetensors", "unet/model.onnx"):
        assert not any(fnmatch.fnmatch(unwanted, p) for p in patterns)


def test_the_tokenizer_encodes_any_text_without_unknown_pieces(dirs):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(dirs["inpaint"] / "tokenizer_2", local_files_only=True)
    text = "Ümlaut façade 日本 🐱 F-16A/B, 0.5% (nice)"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.eos_token_id not in ids[1:-1]  # the unknown token is <|endoftext|>: none inside
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == text.lower().replace(" ", "")


def test_ip_adapter_file_has_the_original_plus_layout(dirs, regenerator):
    tensors = load_file(dirs["ip_adapter"] / IP_WEIGHT)
    assert tensors["image_proj.latents"].shape == (1, TINY_IP_TOKENS, TINY_IMAGE_ENCODER_WIDTH)
    assert {f"image_proj.layers.{i}.0.to_kv.weight" for i in range(4)} <= tensors.keys()
    ids = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("ip_adapter.")})
    cross_attention = [n for n in regenerator.unet.attn_processors if n.endswith("attn2.processor")]
    assert ids == list(range(1, 2 * len(cross_attention), 2))  # 1, 3, 5, ...: the original's numbering
    assert tensors["ip_adapter.1.to_k_ip.weight"].shape[1] == regenerator.unet.config.cross_attention_dim


# --- loading and generating --------------------------------------------------------------------------


def test_every_role_loads_standalone(dirs):
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionXLPipeline
    from transformers import CLIPVisionModelWithProjection

    loaded = {role: kind.load(dirs[role], "cpu", role=role) for role, kind in DIFFUSION_ROLES.items()}
    assert isinstance(loaded["regen_base"], StableDiffusionXLPipeline)
    assert isinstance(loaded["controlnet"], ControlNetModel) and not loaded["controlnet"].training
    assert isinstance(loaded["regen_vae"], AutoencoderKL) and loaded["regen_vae"].dtype == torch.float32
    encoder, state = loaded["ip_adapter"]
    assert isinstance(encoder, CLIPVisionModelWithProjection)
    assert "latents" in state["image_proj"] and "1.to_k_ip.weight" in state["ip_adapter"]


def test_text2image_makes_reproducible_images(dirs):
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    pipe = load_text2image(dirs["text2image"], "cpu")
    assert isinstance(pipe, StableDiffusionPipeline) and isinstance(pipe.scheduler, PNDMScheduler)
    assert pipe.unet.dtype == torch.float32
    prompt = "a photo of a suburban backyard, no animals"
    first = seeded_call(pipe, 7, prompt=prompt)
    assert np.array_equal(first, seeded_call(pipe, 7, prompt=prompt))
    assert not np.array_equal(first, seeded_call(pipe, 8, prompt=prompt))


def test_inpaint_makes_reproducible_images(dirs, photo, mask):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline

    pipe = load_inpaint(dirs["inpaint"], "cpu")
    assert isinstance(pipe, StableDiffusionXLInpaintPipeline) and isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.unet.config.in_channels == 9
    kwargs = dict(prompt="a cat with neon pink fur", image=photo, mask_image=mask, strength=0.75)
    first = seeded_call(pipe, 3, **kwargs)
    assert np.array_equal(first, seeded_call(pipe, 3, **kwargs))
    assert not np.array_equal(first, seeded_call(pipe, 4, **kwargs))


def test_regenerator_follows_control_and_reference_images_reproducibly(regenerator, canny, photo):
    from diffusers import StableDiffusionXLControlNetPipeline

    assert isinstance(regenerator, StableDiffusionXLControlNetPipeline)
    assert regenerator.vae.config.force_upcast is False  # the fp16-fix VAE replaced the base's own
    kwargs = dict(prompt="a cat with cracked marble texture", image=canny, ip_adapter_image=photo)
    regenerator.set_ip_adapter_scale(1.0)
    first = seeded_call(regenerator, 5, **kwargs)
    assert np.array_equal(first, seeded_call(regenerator, 5, **kwargs))
    regenerator.set_ip_adapter_scale(0.0)
    try:
        without_adapter = seeded_call(regenerator, 5, **kwargs)
    finally:
        regenerator.set_ip_adapter_scale(1.0)
    assert not np.array_equal(first, without_adapter)  # the reference image reaches the UNet


# --- errors ------------------------------------------------------------------------------------------


MISSING = {
    "text2image": "unet/diffusion_pytorch_model.safetensors",
    "inpaint": "text_encoder_2/model.safetensors",
    "regen_base": "tokenizer_2/vocab.json",
    "controlnet": "diffusion_pytorch_model.safetensors",
    "regen_vae": "config.json",
    "ip_adapter": IP_WEIGHT,
}


@pytest.mark.parametrize("role", sorted(MISSING))
def test_a_missing_file_is_named_with_the_role(role, dirs, tmp_path):
    broken = tmp_path / role
    shutil.copytree(dirs[role], broken)
    (broken / MISSING[role]).unlink()
    assert any(MISSING[role] in problem for problem in DIFFUSION_ROLES[role].problems(broken))
    with pytest.raises(ModelDirError, match=rf"^{role}: .*incomplete.*{MISSING[role]}"):
        DIFFUSION_ROLES[role].load(broken, "cpu", role=role)


def test_a_missing_directory_and_a_missing_model_index_are_errors(tmp_path):
    with pytest.raises(ModelDirError, match="text2image: model directory .* does not exist"):
        load_text2image(tmp_path / "nowhere", "cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="inpaint: .*missing: model_index.json"):
        load_inpaint(tmp_path / "empty", "cpu")


def test_a_component_dropped_from_model_index_is_named(dirs, tmp_path):
    import json

    broken = tmp_path / "base"
    shutil.copytree(dirs["regen_base"], broken)
    index = json.loads((broken / "model_index.json").read_text())
    index["text_encoder_2"] = [None, None]
    (broken / "model_index.json").write_text(json.dumps(index))
    assert DIFFUSION_ROLES["regen_base"].problems(broken) == ["model_index.json entry 'text_encoder_2'"]


def test_regenerator_names_the_role_whose_files_are_missing(dirs, tmp_path):
    broken = tmp_path / "ip"
    shutil.copytree(dirs["ip_adapter"], broken)
    (broken / IP_ADAPTER_ENCODER / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match=rf"^ip_adapter: .*{IP_ADAPTER_ENCODER}/model.safetensors"):
        load_regenerator(dirs["regen_base"], dirs["controlnet"], dirs["regen_vae"], broken, "cpu")


def test_an_ip_adapter_of_another_kind_is_refused(dirs, tmp_path):
    """A plain (non-Plus) IP-Adapter file has `image_proj.proj.weight` and no Resampler latents."""
    other = tmp_path / "ip"
    shutil.copytree(dirs["ip_adapter"], other)
    tensors = {"image_proj.proj.weight": torch.zeros(4 * 64, 32), "ip_adapter.1.to_k_ip.weight": torch.zeros(64, 64)}
    save_file(tensors, other / IP_WEIGHT)
    assert DIFFUSION_ROLES["ip_adapter"].class_name(other).startswith("ImageProjection+")
    with pytest.raises(ModelDirError, match="ip_adapter: .* is not an IP-Adapter Plus .*ImageProjection"):
        load_regenerator(dirs["regen_base"], dirs["controlnet"], dirs["regen_vae"], other, "cpu")


def test_a_vae_that_does_not_fit_the_base_is_named(dirs, tmp_path):
    from diffusers import AutoencoderKL

    config = {k: v for k, v in AutoencoderKL.load_config(dirs["regen_vae"]).items() if not k.startswith("_")}
    AutoencoderKL(**{**config, "latent_channels": 8}).save_pretrained(tmp_path / "vae8")
    expected = r"^regen_vae: latent_channels is 8 in .*vae8, but the regen_base .* needs 4"
    with pytest.raises(ModelDirError, match=expected):
        load_regenerator(dirs["regen_base"], dirs["controlnet"], tmp_path / "vae8", dirs["ip_adapter"], "cpu")
