"""Tiny causal LM: built deterministically, saved in transformers' format, chatting and sampling reproducibly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from varireal.models.errors import ModelDirError
from varireal.models.load import load_llm
from varireal.models.lock import file_hashes
from varireal.models.tiny import build_llm

MESSAGES = [
    {"role": "system", "content": "You write lists of attribute values."},
    {"role": "user", "content": "List five infeasible backgrounds for an Abyssinian cat, as JSON."},
]


@pytest.fixture(scope="module")
def built_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("llm") / "seed0"
    return out, build_llm(out, seed=0)


@pytest.fixture(scope="module")
def llm(built_model):
    return load_llm(built_model[0], "cpu")


def sample(llm, seed: int, max_new_tokens: int = 24) -> torch.Tensor:
    model, tokenizer = llm
    inputs = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    torch.manual_seed(seed)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            do_sample=True,
            temperature=1.0,
            top_p=0.95,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
    return output[0, inputs["input_ids"].shape[1] :]


def test_same_seed_gives_identical_bytes_and_another_seed_other_weights(built_model, tmp_path):
    built, _ = built_model
    build_llm(tmp_path / "again", seed=0)
    assert file_hashes(tmp_path / "again") == file_hashes(built)
    build_llm(tmp_path / "other", seed=1)
    other = file_hashes(tmp_path / "other")
    assert other["model.safetensors"] != file_hashes(built)["model.safetensors"]
    assert other["tokenizer.json"] == file_hashes(built)["tokenizer.json"]


@pytest.mark.slow  # starts processes
def test_another_process_builds_the_same_bytes(built_model, tmp_path):
    """Tokenizer training and weight init do not depend on process state (hash seeds, thread timing)."""
    built, _ = built_model
    code = (
        "import json, sys; from pathlib import Path; from varireal.models.tiny import build_llm; "
        "from varireal.models.lock import file_hashes; build_llm(Path(sys.argv[1]), seed=0); "
        "print(json.dumps(file_hashes(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "elsewhere")], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == file_hashes(built)


def test_reloaded_weights_equal_the_saved_ones(built_model, llm):
    from transformers import AutoModelForCausalLM

    built, original = built_model
    model, tokenizer = llm
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    before, after = original.state_dict(), model.state_dict()
    assert sorted(before) == sorted(after) and all(torch.equal(before[k], after[k]) for k in before)
    _, info = AutoModelForCausalLM.from_pretrained(built, local_files_only=True, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_tokenizer_has_chat_template_eos_and_pad(llm):
    model, tokenizer = llm
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    ids = tokenizer("Ünïcode 🐈 and neon-pink fur")["input_ids"]
    assert tokenizer.decode(ids) == "Ünïcode 🐈 and neon-pink fur"  # byte-level: nothing is unknown


def test_seeded_sampling_is_reproducible(llm):
    first, again, other = sample(llm, 7), sample(llm, 7), sample(llm, 8)
    assert len(first) == 24 and torch.equal(first, again)
    assert not torch.equal(first, other)
    assert isinstance(llm[1].decode(first, skip_special_tokens=True), str)


def test_missing_or_incomplete_directory_is_named(built_model, tmp_path):
    built, _ = built_model
    with pytest.raises(ModelDirError, match="llm: model directory .*nowhere does not exist"):
        load_llm(tmp_path / "nowhere", "cpu")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_bytes((built / "config.json").read_bytes())
    with pytest.raises(ModelDirError) as info:
        load_llm(partial, "cpu")
    assert "llm:" in str(info.value) and str(partial) in str(info.value) and "tokenizer" in str(info.value)
