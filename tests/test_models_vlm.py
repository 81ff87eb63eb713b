"""The `vlm` role: a tiny LLaVA-NeXT built from a seed, loaded back from disk, read as yes/no probabilities."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from varireal.judge.questions import chat_prompt
from varireal.judge.yes_no import YesNoJudge, answer_token_ids
from varireal.models.errors import ModelDirError
from varireal.models.lock import file_hashes
from varireal.models.spec import ModelSpec
from varireal.models.vlm import VLM_IMAGE_TOKEN, VLM_ROLES, build_tiny_vlm, load_vlm, vlm_problems


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vlm") / "vlm"
    build_tiny_vlm(out, seed=0)
    return out


@pytest.fixture(scope="module")
def vlm(vlm_dir):
    return load_vlm(vlm_dir, "cpu")


def test_same_seed_gives_identical_files_and_another_seed_other_weights(tmp_path, vlm_dir):
    VLM_ROLES["vlm"].build_tiny(tmp_path / "again", ModelSpec(source="tiny", seed=0))
    build_tiny_vlm(tmp_path / "other", seed=1)
    assert file_hashes(tmp_path / "again") == file_hashes(vlm_dir)
    assert file_hashes(tmp_path / "other")["model.safetensors"] != file_hashes(vlm_dir)["model.safetensors"]


def test_builds_only_into_an_empty_directory(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError, match="empty directory"):
        build_tiny_vlm(tmp_path / "taken", seed=0)


def test_loads_from_disk_as_the_paper_classes_in_eval_mode(vlm_dir, vlm):
    processor, model = vlm
    assert type(processor).__name__ == "LlavaNextProcessor"
    assert type(model).__name__ == "LlavaNextForConditionalGeneration"
    assert not model.training and model.dtype == torch.float32
    assert processor.tokenizer.padding_side == "left"
    assert VLM_ROLES["vlm"].class_name(vlm_dir) == "LlavaNextForConditionalGeneration"
    assert vlm_problems(vlm_dir) == []


def test_an_incomplete_or_missing_directory_names_what_is_missing(tmp_path, vlm_dir):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_bytes((vlm_dir / "config.json").read_bytes())
    assert any("weights" in problem for problem in vlm_problems(partial))
    with pytest.raises(ModelDirError, match="incomplete, missing: weights"):
        load_vlm(partial, "cpu")
    with pytest.raises(ModelDirError, match="does not exist"):
        load_vlm(tmp_path / "nowhere", "cpu")


def test_chat_prompt_is_mistral_inst_style_with_one_image(vlm):
    processor, _ = vlm
    prompt = chat_prompt(processor, "Is this a cat?", "Answer yes or no.")
    assert prompt.count(VLM_IMAGE_TOKEN) == 1
    assert "[INST]" in prompt and prompt.rstrip().endswith("[/INST]")
    assert "Is this a cat? Answer yes or no." in prompt


def test_yes_and_no_are_distinct_single_tokens(vlm):
    tokenizer = vlm[0].tokenizer
    yes, no = answer_token_ids(tokenizer, "yes"), answer_token_ids(tokenizer, "no")
    assert yes and no and not set(yes) & set(no)
    assert all(tokenizer.decode([i]).strip().lower() == "yes" for i in yes)


def test_p_yes_is_a_probability_and_batching_does_not_change_it(vlm):
    processor, _ = vlm
    judge = YesNoJudge(*vlm)
    images = [Image.new("RGB", (60, 40), (200, 10, 10)), Image.new("RGB", (30, 90), (0, 120, 40))]
    prompts = [
        chat_prompt(processor, "Is the background a deep sea?", "Answer yes or no."),
        chat_prompt(processor, "Could a rocket with elephant skin texture exist in reality?", "Answer yes or no."),
    ]
    together = judge.p_yes(images, prompts)
    alone = [judge.p_yes([image], [prompt])[0] for image, prompt in zip(images, prompts)]
    assert all(0.0 <= p <= 1.0 for p in together)
    assert together == pytest.approx(alone, abs=1e-5)
    assert judge.p_yes(images, prompts) == together  # same inputs, same numbers
