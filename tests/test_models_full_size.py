"""The paper's architectures at real size (benchmarks.full_size), counted on the meta device."""

from __future__ import annotations

import pytest
import torch

from benchmarks import full_size


def _count(*modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def test_the_configs_are_the_published_architectures():
    with torch.device("meta"):
        # the parameter counts the hub model cards and papers give
        assert _count(full_size._unet(full_size.sdxl_unet_config())) == 2_567_463_684  # SDXL UNet
        assert _count(full_size._unet(full_size.sd21_unet_config())) == 865_910_724  # SD 2.1 UNet
        assert _count(full_size._vae(1024)) == 83_653_863  # the SD / SDXL VAE
        assert _count(full_size._text(full_size.CLIP_L_TEXT)) == 123_060_480  # CLIP ViT-L/14 text
        assert _count(full_size._text(full_size.BIGG_TEXT, projection=True)) == 694_659_840  # OpenCLIP bigG text
    # the whole regenerator base: UNet + both text encoders (it decodes with regen_vae)
    assert full_size.role_size("regen_base").parameters == 2_567_463_684 + 123_060_480 + 694_659_840
    assert full_size.role_size("vlm").parameters == 7_566_747_648  # llava-v1.6-mistral-7b-hf


def test_the_ip_adapter_file_is_the_published_one():
    with torch.device("meta"):
        encoder, *_ = full_size._ip_adapter()
    adapter = full_size.role_size("ip_adapter").parameters - _count(encoder)
    # ip-adapter-plus_sdxl_vit-h.safetensors: 848 MB at fp16 (Resampler + to_k_ip/to_v_ip of 70 layers)
    assert round(adapter * 2 / 1e6) == 847


def test_a_role_without_an_architecture_is_named():
    with pytest.raises(ValueError, match="role='detector': no full-size architecture"):
        full_size.role_size("detector")
