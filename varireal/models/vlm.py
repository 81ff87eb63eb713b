"""The `vlm` role: LLaVA-NeXT (LLaVA-1.6-Mistral-7B in the paper) that answers the filter's questions.

- build_tiny_vlm: a random LlavaNextForConditionalGeneration (CLIP vision tower, Mistral text model,
  32 px images) and its LlavaNextProcessor with a locally trained byte-level BPE tokenizer, saved
  in the real on-disk format, so the same loader reads the tiny build and the downloaded weights.
- load_vlm: (processor, model) from a local directory, never from the network.
- VLM_ROLES: the RoleKind entry that varireal.models.roles merges into ROLES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from varireal.models.errors import ModelDirError
from varireal.models.load import _any, _weights, check_model_dir
from varireal.models.quiet import quiet_progress
from varireal.models.role_kind import RoleKind, architecture, patterns
from varireal.models.tiny import _empty_dir, seeded

VLM_IMAGE_TOKEN = "<image>"
VLM_SPECIALS = ("<unk>", "<s>", "</s>", VLM_IMAGE_TOKEN)
VLM_BOS, VLM_EOS, VLM_PAD = "<s>", "</s>", "<unk>"  # llava-hf's Mistral tokenizer pads with <unk> too
# Mistral's [INST] format with LLaVA's content list: an {"type": "image"} item becomes "<image>\n",
# as in llava-hf/llava-v1.6-mistral-7b-hf's own template.
VLM_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>\\n' }}{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if message['content'] is string %}{{ ' ' + message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ ' ' + item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)
# The words the filter reads from the next-token distribution appear often, so BPE keeps them whole.
VLM_CORPUS = (
    "[INST] <image>\nIs the background of this photo a suburban backyard? Answer yes or no. [/INST] Yes",
    "[INST] <image>\nDoes the cat in this image have neon pink fur? Answer yes or no. [/INST] No",
    "[INST] <image>\nCould this image exist in reality? Answer yes or no. [/INST] yes",
    "[INST] <image>\nIs it possible for a rocket to have a cracked marble texture? Answer yes or no. [/INST] no",
    "Yes yes YES No no NO yes no Yes No yes. no. Yes, No, yes, no,",
    "A red sports car parked on a suburban street at dusk; an astronaut on a space station.",
    "Backgrounds, colors and textures: deep sea, city street, metallic paint, elephant skin, emerald green.",
    "The quick brown fox jumps over the lazy dog 0123456789.",
)
VLM_IMAGE_SIZE = 32  # the CLIP tower's input side (px); patches of 8 px -> 4 x 4 features
VLM_PATCH_SIZE = 8
VLM_GRID_PINPOINTS = [[32, 64], [64, 32], [64, 64]]  # (height, width) layouts of the high-resolution tiles


def build_vlm_tokenizer() -> Any:
    """Byte-level BPE (any text encodes) trained on a fixed corpus, with <image> and the [INST] template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(VLM_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(VLM_CORPUS) * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=VLM_BOS,
        eos_token=VLM_EOS,
        unk_token=VLM_PAD,
        pad_token=VLM_PAD,
        extra_special_tokens={"image_token": VLM_IMAGE_TOKEN},
        chat_template=VLM_CHAT_TEMPLATE,
        model_max_length=1024,
        padding_side="left",
    )
    return tokenizer


def build_tiny_vlm(out_dir: str | Path, seed: int) -> Any:
    """LlavaNextForConditionalGeneration (CLIP 2 layers + Mistral 2 layers, hidden 32) + processor, into out_dir.

    Returns the model as built (in memory).
    """
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        MistralConfig,
    )

    out_dir = _empty_dir(out_dir)
    tokenizer = build_vlm_tokenizer()
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": VLM_IMAGE_SIZE},
        crop_size={"height": VLM_IMAGE_SIZE, "width": VLM_IMAGE_SIZE},
        image_grid_pinpoints=[list(p) for p in VLM_GRID_PINPOINTS],
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=VLM_PATCH_SIZE,
        vision_feature_select_strategy="default",
        chat_template=VLM_CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=VLM_IMAGE_SIZE,
        patch_size=VLM_PATCH_SIZE,
        projection_dim=32,
    )
    text = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=1024,
        sliding_window=None,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(VLM_IMAGE_TOKEN),
        image_grid_pinpoints=[list(p) for p in VLM_GRID_PINPOINTS],
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(VLM_IMAGE_SIZE // VLM_PATCH_SIZE) ** 2,
    )
    with seeded("vlm", seed):
        model = LlavaNextForConditionalGeneration(config).eval()
    with quiet_progress():
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return model


def vlm_problems(model_dir: Path) -> list[str]:
    """What a LLaVA-NeXT directory lacks to load; [] = complete."""
    return [
        *_any(model_dir, ("config.json",), "model config"),
        *_weights(model_dir),
        *_any(model_dir, ("preprocessor_config.json", "processor_config.json"), "image processor config"),
        *_any(model_dir, ("tokenizer_config.json",), "tokenizer config"),
        *_any(model_dir, ("tokenizer.json", "tokenizer.model"), "tokenizer vocabulary"),
    ]


def load_vlm(model_dir: str | Path, device: str, *, role: str = "vlm") -> tuple[Any, Any]:
    """(processor, model): a LlavaNextProcessor (left padding) and the model in eval mode.

    float32 on the CPU; float16 on a GPU, as LLaVA-NeXT is usually served.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = check_model_dir(role, model_dir, vlm_problems)
    dtype = torch.float32 if device == "cpu" else torch.float16
    try:
        with quiet_progress():
            processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as err:
        raise ModelDirError(f"{role}: cannot load a vision-language model from {model_dir}: {err}") from err
    if getattr(processor, "chat_template", None) is None:
        raise ModelDirError(f"{role}: the processor in {model_dir} has no chat template (an instruct VLM is needed)")
    # Prompts of a batch end at the same position only when padded on the left.
    processor.tokenizer.padding_side = "left"
    return processor, model.to(device).eval()


VLM_ROLES: dict[str, RoleKind] = {
    "vlm": RoleKind(
        build_tiny=lambda out, spec: build_tiny_vlm(out, spec.seed),
        load=load_vlm,
        problems=vlm_problems,
        class_name=architecture,
        hub_patterns=patterns("*.json", "*.safetensors", "tokenizer.model", "*.jinja"),
    ),
}
