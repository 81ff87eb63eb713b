"""The classifier: tiny open_clip CLIP on disk, split attention, LoRA, logits, adapter files."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from varireal.finetune.lora import (
    AdapterError,
    LoraParams,
    SplitAttention,
    apply_lora,
    load_adapter,
    parameter_counts,
    save_adapter,
    split_attention,
    trainable_parameters,
)
from varireal.finetune.model import ClipClassifier, build_classifier, class_prompts
from varireal.models.clip import CLIP_ROLES, CONFIG_FILE, WEIGHTS_FILE, build_tiny_clip, load_clip
from varireal.models.errors import ModelDirError
from varireal.models.spec import ModelSpec

CLASSES = ["Abyssinian", "Bengal", "Birman"]
TEMPLATE = "a photo of a {prefix} {class_name}."
LORA = LoraParams(rank=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"), towers=("image", "text"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clip") / "clip"
    build_tiny_clip(out, seed=0)
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _classifier(clip_dir: Path, lora: LoraParams = LORA, seed: int = 0) -> ClipClassifier:
    return build_classifier(clip_dir, CLASSES, TEMPLATE, "pet", lora, "cpu", seed=seed)


def _train_step(model: ClipClassifier, steps: int = 1) -> None:
    optimizer = torch.optim.AdamW([p for _, p in trainable_parameters(model)], lr=1e-2, weight_decay=1e-4)
    model.train()
    for step in range(steps):
        loss = F.cross_entropy(model(_images(seed=step)), torch.tensor([0, 1, 2, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


# --- the role: tiny build and loading -------------------------------------------------------------


def test_tiny_build_is_deterministic_and_loads_through_open_clip(clip_dir, tmp_path):
    build_tiny_clip(tmp_path / "again", seed=0)
    build_tiny_clip(tmp_path / "other", seed=1)
    assert _hashes(tmp_path / "again") == _hashes(clip_dir)
    assert sorted(_hashes(clip_dir)) == [CONFIG_FILE, WEIGHTS_FILE]
    assert _hashes(tmp_path / "other")[WEIGHTS_FILE] != _hashes(clip_dir)[WEIGHTS_FILE]

    built = build_tiny_clip(tmp_path / "third", seed=0)
    model, preprocess, tokenizer = load_clip(clip_dir, "cpu")
    assert type(model).__name__ == "CLIP" and not model.training
    loaded = model.state_dict()
    assert all(torch.equal(tensor, loaded[name]) for name, tensor in built.state_dict().items())
    assert tuple(preprocess["size"]) == (32, 32) and len(preprocess["mean"]) == 3
    assert tokenizer(["a photo of a cat."]).shape == (1, 77)


def test_role_checks_describe_incomplete_dirs(clip_dir, tmp_path):
    kind = CLIP_ROLES["clip"]
    assert kind.problems(clip_dir) == []
    assert kind.class_name(clip_dir) == "CLIP"
    assert kind.hub_patterns(ModelSpec(source="tiny", seed=0)) == [CONFIG_FILE, WEIGHTS_FILE]
    assert CONFIG_FILE in kind.problems(tmp_path)[0]
    (tmp_path / CONFIG_FILE).write_bytes((clip_dir / CONFIG_FILE).read_bytes())
    assert kind.problems(tmp_path) == [f"weights {WEIGHTS_FILE}"]
    with pytest.raises(ModelDirError, match=WEIGHTS_FILE):
        load_clip(tmp_path, "cpu")
    (tmp_path / CONFIG_FILE).write_text('{"preprocess_cfg": {}}')
    assert "model_cfg" in kind.problems(tmp_path)[0]


def test_tiny_builder_takes_the_spec_seed(tmp_path, clip_dir):
    CLIP_ROLES["clip"].build_tiny(tmp_path / "clip", ModelSpec(source="tiny", seed=0))
    assert _hashes(tmp_path / "clip") == _hashes(clip_dir)


# --- split attention ---------------------------------------------------------------------------------


def test_split_attention_matches_the_fused_attention_in_both_towers(clip_dir):
    model, _, tokenizer = load_clip(clip_dir, "cpu")
    split = copy.deepcopy(model)
    replaced = split_attention(split)
    assert len(replaced) == 4  # 2 image + 2 text blocks
    assert not any(isinstance(m, nn.MultiheadAttention) for m in split.modules())
    tokens = tokenizer(class_prompts(CLASSES, TEMPLATE, "pet"))
    images = _images()
    with torch.no_grad():
        assert torch.allclose(split.encode_image(images), model.encode_image(images), atol=1e-5)
        assert torch.allclose(split.encode_text(tokens), model.encode_text(tokens), atol=1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_attention_honours_every_mask_form(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    split = SplitAttention.from_multihead(mha)
    x = torch.randn(3, 5, 16) if batch_first else torch.randn(5, 3, 16)
    causal = torch.triu(torch.full((5, 5), float("-inf")), 1)
    causal_bool = torch.isinf(causal)
    blocked = torch.rand(5, 5) > 0.6
    blocked.fill_diagonal_(False)
    per_head = torch.randn(3 * 4, 5, 5)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True], [False] * 4 + [True]])
    for kwargs in (
        {},
        {"attn_mask": causal},
        {"attn_mask": blocked},
        {"attn_mask": per_head},
        {"key_padding_mask": padding},
        {"attn_mask": causal_bool, "key_padding_mask": padding},
    ):
        with torch.no_grad():
            expected = mha(x, x, x, need_weights=False, **kwargs)[0]
            got, weights = split(x, x, x, need_weights=False, **kwargs)
        assert weights is None
        assert torch.allclose(got, expected, atol=1e-5), kwargs


# --- LoRA ------------------------------------------------------------------------------------------


def test_only_lora_weights_train(clip_dir):
    model = _classifier(clip_dir)
    names = [name for name, _ in trainable_parameters(model)]
    assert names and all("lora_" in name for name in names)
    assert {n.split(".attn.")[1].split(".")[0] for n in names} == {"q_proj", "v_proj"}
    assert any(n.startswith("clip.visual.") for n in names) and any(n.startswith("clip.transformer.") for n in names)
    counts = parameter_counts(model)
    # q and v of 2 image blocks (width 64) and 2 text blocks (width 32): r * (in + out) each
    assert counts["trainable"] == 2 * 2 * 4 * (64 + 64) + 2 * 2 * 4 * (32 + 32)
    assert counts["total"] > 100 * counts["trainable"]

    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    _train_step(model)
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], value) for n, value in base.items())
    changed = [n for n, value in lora.items() if not torch.equal(after[n], value)]
    assert any(n.startswith("clip.visual.") for n in changed)
    assert any(n.startswith("clip.transformer.") for n in changed)


def test_lora_starts_as_the_base_model_and_its_init_follows_the_seed(clip_dir):
    base, _, _ = load_clip(clip_dir, "cpu")
    model = _classifier(clip_dir).eval()
    images = _images()
    with torch.no_grad():
        assert torch.allclose(model.clip.encode_image(images), base.encode_image(images), atol=1e-5)
    same, other = _classifier(clip_dir, seed=0), _classifier(clip_dir, seed=1)
    a_name = next(n for n, _ in trainable_parameters(model) if "lora_A" in n)
    params = dict(model.named_parameters())
    assert torch.equal(dict(same.named_parameters())[a_name], params[a_name])
    assert not torch.equal(dict(other.named_parameters())[a_name], params[a_name])


def test_image_tower_only_lora_leaves_text_frozen(clip_dir):
    lora = LORA.model_copy(update={"towers": ("image",)})
    names = [n for n, _ in trainable_parameters(_classifier(clip_dir, lora))]
    assert names and all(n.startswith("clip.visual.") for n in names)


def test_lora_params_are_validated():
    ok = {"rank": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"], "towers": ["image", "text"]}
    assert LoraParams(**ok).target_modules == ("q_proj", "v_proj")
    for bad in ({"rank": 0}, {"alpha": 0}, {"dropout": 1.0}, {"target_modules": ["query"]}, {"towers": ["audio"]}):
        with pytest.raises(ValueError):
            LoraParams(**{**ok, **bad})
    with pytest.raises(ValueError, match="extra"):
        LoraParams(**ok, bias="all")


# --- logits ------------------------------------------------------------------------------------------


def test_logits_are_scaled_cosines_to_the_class_prompts(clip_dir):
    model = _classifier(clip_dir)
    _train_step(model)  # non-zero LoRA updates, so the check covers the adapted towers
    model.eval()
    _, _, tokenizer = load_clip(clip_dir, "cpu")
    assert model.prompts == ["a photo of a pet Abyssinian.", "a photo of a pet Bengal.", "a photo of a pet Birman."]
    images = _images(5)
    with torch.no_grad():
        logits = model(images)
        image = model.clip.encode_image(images)
        text = model.clip.encode_text(tokenizer(model.prompts))
        cosine = (image / image.norm(dim=-1, keepdim=True)) @ (text / text.norm(dim=-1, keepdim=True)).T
    assert logits.shape == (5, len(CLASSES))
    assert torch.allclose(logits, model.clip.logit_scale.exp() * cosine, atol=1e-5)
    assert (model.image_size, len(model.mean), len(model.std)) == (32, 3, 3)


def test_class_embeddings_are_cached_in_eval_and_recomputed_in_training(clip_dir):
    model = _classifier(clip_dir).eval()
    first = model.class_embeddings()
    assert model.class_embeddings() is first and not first.requires_grad
    model.train()
    loss = F.cross_entropy(model(_images()), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    text_b = [p for n, p in model.named_parameters() if "lora_B" in n and n.startswith("clip.transformer.")]
    assert text_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in text_b)
    model.eval()
    assert model.class_embeddings() is not first


def test_forward_runs_under_autocast(clip_dir):
    model = _classifier(clip_dir).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(_images())
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()


def test_prompts_collapse_an_empty_prefix_and_reject_unknown_fields():
    assert class_prompts(["Boeing 707"], TEMPLATE, "") == ["a photo of a Boeing 707."]
    with pytest.raises(ValueError, match="class_name"):
        class_prompts(["x"], "a photo of a {label}.", "")
    with pytest.raises(ValueError, match="distinct"):
        class_prompts(["x", "x"], TEMPLATE, "")


# --- adapter files -------------------------------------------------------------------------------------


def test_adapter_round_trip_restores_the_logits(clip_dir, tmp_path):
    model = _classifier(clip_dir)
    _train_step(model, steps=2)
    path = save_adapter(model, tmp_path / "adapter.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        assert LoraParams.model_validate_json(handle.metadata()["varireal.lora"]) == LORA
    assert keys and all("lora_" in key for key in keys)
    assert len(keys) == len(trainable_parameters(model))

    fresh = _classifier(clip_dir, seed=7).eval()
    images = _images(3, seed=9)
    before = fresh(images).detach()
    load_adapter(fresh, path)  # also drops the class embeddings cached by the call above
    with torch.no_grad():
        expected = model.eval()(images)
        assert torch.equal(fresh(images), expected)
        assert not torch.allclose(before, expected)


def test_bad_adapter_files_are_refused_with_their_path(clip_dir, tmp_path):
    model = _classifier(clip_dir)
    path = save_adapter(model, tmp_path / "adapter.safetensors")

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors at all")
    with pytest.raises(AdapterError, match="garbage.safetensors"):
        load_adapter(model, garbage)
    with pytest.raises(AdapterError, match="only"):
        load_adapter(model, tmp_path / "adapter.pt")
    with pytest.raises(AdapterError, match="not found"):
        load_adapter(model, tmp_path / "missing.safetensors")

    other_rank = _classifier(clip_dir, LORA.model_copy(update={"rank": 2}))
    with pytest.raises(AdapterError, match="adapter.safetensors.*LoRA settings"):
        load_adapter(other_rank, path)

    bare = load_clip(clip_dir, "cpu")[0]
    apply_lora(bare, LORA, seed=0)  # same settings, but keys without the classifier's "clip." prefix
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(bare, LORA, seed=0)
    with pytest.raises(AdapterError, match="adapter.safetensors.*do not match"):
        load_adapter(bare, path)
