"""Tiny random-weight models of the paper's classes, saved in the real on-disk formats.

Each builder writes one role's files into an empty directory; the same loaders as for the real
weights read them back (`from_pretrained(dir)`, sam2's `build_sam2(config, checkpoint)`).
Builds are deterministic: the same seed gives byte-identical files (for a fixed library set).
Heavy libraries are imported inside the builders so that importing this module stays cheap.
"""

from __future__ import annotations

import io
import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from varireal.io import write_bytes
from varireal.models.quiet import quiet_progress
from varireal.models.segmenter import config_error, write_sam2_json

# --- shared -----------------------------------------------------------------------------------


@contextmanager
def seeded(kind: str, seed: int) -> Iterator[None]:
    """Seed torch's global CPU generator for one build, restoring the caller's state afterwards."""
    import torch

    from varireal.seeding import item_seed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(item_seed("varireal.models.tiny", kind, seed))
        yield


def _empty_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: a tiny model is built into an empty directory; this one has files")
    return out_dir


# --- detector: Grounding DINO (transformers) ---------------------------------------------------

# Lower-case words the tiny BERT vocabulary knows whole; any other lower-case ASCII word is
# spelled with the single-character pieces below, so no prompt of the pipeline is all [UNK].
DETECTOR_WORDS = (
    "a an the of and or on in with photo picture image object thing pet cat dog animal "
    "car vehicle plane airplane aircraft jet bird person background texture color"
).split()
DETECTOR_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DETECTOR_IMAGE_SIZE = {"shortest_edge": 128, "longest_edge": 192}


def detector_vocab() -> dict[str, int]:
    pieces = list(string.ascii_lowercase + string.digits)
    tokens = [
        *DETECTOR_SPECIALS,
        *".,-/'()&+:!?",
        *pieces,
        *(f"##{p}" for p in pieces),
        *DETECTOR_WORDS,
    ]
    seen: dict[str, int] = {}
    for token in tokens:
        seen.setdefault(token, len(seen))
    return seen


def build_detector(out_dir: Path, seed: int) -> Any:
    """GroundingDinoForObjectDetection (Swin + BERT, d_model 32, 10 queries) + its processor, into out_dir.

    Returns the model as built (in memory), e.g. to compare with what loads back.
    """
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    out_dir = _empty_dir(out_dir)
    vocab = detector_vocab()
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=512)
    image_processor = GroundingDinoImageProcessor(size=dict(DETECTOR_IMAGE_SIZE))
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    backbone = SwinConfig(
        image_size=DETECTOR_IMAGE_SIZE["longest_edge"],
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,  # the shared box head is tied across decoder layers: 2 is the least
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        num_queries=10,
    )
    with seeded("detector", seed):
        model = GroundingDinoForObjectDetection(config).eval()
    with quiet_progress():
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return model


# --- segmenter: SAM 2.1 (Meta's sam2 package) --------------------------------------------------

SAM2_TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAM2_TINY_CHECKPOINT = "sam2.1_hiera_tiny_random.pt"
SAM2_TINY_IMAGE_SIZE = 256


def sam2_tiny_overrides(image_size: int = SAM2_TINY_IMAGE_SIZE) -> list[str]:
    """Hydra overrides that shrink sam2.1_hiera_t to ~0.64 M parameters at `image_size` px.

    Hiera stages of 1, 2, 1, 1 blocks (dims 8-64); the one global-attention block (index 2) is
    the last block of stage 2, never the first block of a stage (those pool queries and need a
    window). Neck/memory width 32, memory 16. Only numeric sizes of keys that sam2.json may carry
    (varireal.models.segmenter.SAM2_OVERRIDE_KEYS): a new key goes on that allow-list too.
    """
    feat = image_size // 16
    return [
        f"++model.image_size={image_size}",
        "++model.image_encoder.trunk.embed_dim=8",
        "++model.image_encoder.trunk.num_heads=1",
        "++model.image_encoder.trunk.stages=[1,2,1,1]",
        "++model.image_encoder.trunk.global_att_blocks=[2]",
        "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
        "++model.image_encoder.neck.d_model=32",
        "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
        "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
        "++model.memory_attention.d_model=32",
        "++model.memory_attention.num_layers=1",
        "++model.memory_attention.layer.d_model=32",
        "++model.memory_attention.layer.dim_feedforward=64",
        "++model.memory_attention.layer.self_attention.embedding_dim=32",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        "++model.memory_attention.layer.cross_attention.embedding_dim=32",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
        "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
        "++model.memory_encoder.out_dim=16",
        "++model.memory_encoder.in_dim=32",
        "++model.memory_encoder.position_encoding.num_pos_feats=16",
        "++model.memory_encoder.mask_downsampler.embed_dim=32",
        "++model.memory_encoder.fuser.layer.dim=32",
        "++model.memory_encoder.fuser.num_layers=1",
    ]


def sam2_checkpoint_bytes(state_dict: dict) -> bytes:
    """sam2's checkpoint format ({"model": state_dict}) as bytes.

    Saved through a buffer: torch names the records inside the zip after the file, so saving to a
    temporary name would change the bytes.
    """
    import torch

    state = {key: value.detach().cpu().clone().contiguous() for key, value in state_dict.items()}
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    return buffer.getvalue()


def build_segmenter(out_dir: Path, seed: int, config: str | None = None) -> Any:
    """SAM2Base from a sam2.1 config with shrinking overrides, as checkpoint + sam2.json, into out_dir.

    Returns the model as built (in memory).
    """
    from sam2.build_sam import build_sam2

    out_dir = _empty_dir(out_dir)
    config = config or SAM2_TINY_CONFIG
    if error := config_error(config):  # before hydra composes it: only sam2's own configs
        raise ValueError(error)
    overrides = sam2_tiny_overrides()
    with seeded("segmenter", seed):
        model = build_sam2(config, ckpt_path=None, device="cpu", hydra_overrides_extra=list(overrides))
    write_bytes(Path(out_dir) / SAM2_TINY_CHECKPOINT, sam2_checkpoint_bytes(model.state_dict()))
    write_sam2_json(out_dir, config, SAM2_TINY_CHECKPOINT, SAM2_TINY_IMAGE_SIZE, overrides)
    return model


# --- llm: causal LM (transformers Llama) + byte-level BPE tokenizer ----------------------------

LLM_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
LLM_EOS, LLM_PAD = "<|im_end|>", "<|endoftext|>"
# ChatML, as in the Qwen2.5 instruct models the paper profile uses.
LLM_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLM_CORPUS = (
    "Write feasible and infeasible attribute values for the object in the photo.",
    "A red sports car parked on a suburban street at dusk.",
    "An Abyssinian cat with ruddy, blue-gray or fawn fur sitting in a backyard.",
    "Infeasible: a cat with cracked marble texture; a plane flying under the deep sea.",
    "Backgrounds: suburban backyard, city street, airport runway, mountain road, space station.",
    "Textures: metallic paint, matte plastic, brushed steel, woven wool, elephant skin, tree bark.",
    "Colors: neon pink, emerald green, navy blue, golden yellow, charcoal black, snow white.",
    '{"values": [{"value": "deep sea", "description": "dark blue water with fish"}]}',
    "Answer with one JSON object and nothing else. Each value is a short phrase.",
    "The quick brown fox jumps over the lazy dog 0123456789.",
)


def build_llm_tokenizer():
    """A byte-level BPE (any text encodes, no [UNK]) trained on a fixed corpus, with ChatML."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(LLM_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(LLM_CORPUS), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=LLM_EOS,
        pad_token=LLM_PAD,
        chat_template=LLM_CHAT_TEMPLATE,
        model_max_length=512,
    )


def build_llm(out_dir: Path, seed: int) -> Any:
    """LlamaForCausalLM (2 layers, hidden 64) + its tokenizer (ChatML template) and generation config, into out_dir.

    Returns the model as built (in memory).
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = _empty_dir(out_dir)
    tokenizer = build_llm_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with seeded("llm", seed):
        model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with quiet_progress():
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    return model
