"""The `models:` section of params.yaml: every error names the key and the value given."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from varireal.models.spec import ModelSpec, validate_specs
from varireal.settings.models import ModelsParams

SHA = "12bdfa3120f3e7ec7b434d90674b3396eccf88eb"

# The block proposed for params.yaml; kept here so that it stays valid.
PARAMS_MODELS = """
models:
  tiny:
    detector: {source: tiny, seed: 0}
    segmenter: {source: tiny, seed: 0}
    llm: {source: tiny, seed: 0}
  paper:
    detector:
      source: hub
      repo_id: IDEA-Research/grounding-dino-base
      revision: 12bdfa3120f3e7ec7b434d90674b3396eccf88eb
    segmenter:
      source: hub
      repo_id: facebook/sam2.1-hiera-large
      revision: 665f8e2ad61cf5f53d65644ff27c8ee525124610
      sam2_config: configs/sam2.1/sam2.1_hiera_l.yaml
      checkpoint: sam2.1_hiera_large.pt
    llm:
      source: hub
      repo_id: Qwen/Qwen2.5-7B-Instruct
      revision: a09a35458c702b33eeacc393d103063234e8bc28
"""


def parse(models: dict) -> ModelsParams:
    return ModelsParams.model_validate(models)


def errors_text(models: dict) -> str:
    with pytest.raises(ValidationError) as info:
        parse(models)
    return str(info.value)


def test_proposed_params_block_is_valid():
    params = parse(yaml.safe_load(PARAMS_MODELS)["models"])
    assert sorted(params.for_profile("tiny")) == ["detector", "llm", "segmenter"]
    paper = params.for_profile("paper")
    assert paper["segmenter"].checkpoint == "sam2.1_hiera_large.pt"
    assert all(spec.source == "hub" and len(spec.revision) == 40 for spec in paper.values())


def test_tiny_needs_a_seed():
    text = errors_text({"tiny": {"llm": {"source": "tiny"}}, "paper": {}})
    assert "tiny.llm" in text and "seed" in text


def test_revision_must_be_a_commit_sha():
    text = errors_text({"tiny": {}, "paper": {"detector": {"source": "hub", "repo_id": "a/b", "revision": "main"}}})
    assert "paper.detector.revision" in text and "'main'" in text and "40-character" in text


def test_hub_without_revision_names_the_repo():
    text = errors_text({"tiny": {}, "paper": {"llm": {"source": "hub", "repo_id": "Qwen/Qwen2.5-7B-Instruct"}}})
    assert "revision" in text and "Qwen/Qwen2.5-7B-Instruct" in text


def test_unknown_role_lists_the_allowed_ones():
    text = errors_text({"tiny": {"detektor": {"source": "tiny", "seed": 0}}, "paper": {}})
    assert "'detektor'" in text and "clip, controlnet, detector, inpaint, ip_adapter, llm" in text


def test_misspelled_key_is_named_with_its_value():
    text = errors_text({"tiny": {"llm": {"source": "tiny", "sed": 3}}, "paper": {}})
    assert "tiny.llm.sed" in text and "3" in text


def test_seed_is_not_for_hub_and_repo_is_not_for_tiny():
    text = errors_text({"tiny": {}, "paper": {"llm": {"source": "hub", "repo_id": "a/b", "revision": SHA, "seed": 1}}})
    assert "seed=1" in text
    text = errors_text({"tiny": {"llm": {"source": "tiny", "seed": 0, "repo_id": "a/b"}}, "paper": {}})
    assert "repo_id='a/b'" in text


def test_role_specific_fields():
    text = errors_text(
        {
            "tiny": {},
            "paper": {
                "segmenter": {
                    "source": "hub",
                    "repo_id": "facebook/sam2.1-hiera-large",
                    "revision": SHA,
                    "checkpoint": "x.pt",
                }
            },
        }
    )
    assert "segmenter.sam2_config" in text
    text = errors_text(
        {"tiny": {"detector": {"source": "tiny", "seed": 0, "sam2_config": "configs/x.yaml"}}, "paper": {}}
    )
    assert "detector.sam2_config='configs/x.yaml'" in text and "segmenter" in text


def test_bad_repo_id_and_source():
    assert "repo_id='grounding-dino-base'" in errors_text(
        {"tiny": {}, "paper": {"detector": {"source": "hub", "repo_id": "grounding-dino-base", "revision": SHA}}}
    )
    assert "source" in errors_text({"tiny": {"llm": {"source": "local", "seed": 0}}, "paper": {}})


def test_upper_case_sha_is_normalised_and_specs_are_frozen():
    spec = ModelSpec(source="hub", repo_id="a/b", revision=SHA.upper())
    assert spec.revision == SHA
    with pytest.raises(ValidationError):
        spec.revision = "0" * 40  # type: ignore[misc]


def test_validate_specs_parses_dicts_and_sorts_roles():
    specs = validate_specs({"llm": {"source": "tiny", "seed": 1}, "detector": ModelSpec(source="tiny", seed=2)})
    assert list(specs) == ["detector", "llm"] and specs["llm"].seed == 1
    with pytest.raises(ValueError, match="unknown model role 'mllm'"):
        validate_specs({"mllm": {"source": "tiny", "seed": 0}})


def test_segmenter_config_and_checkpoint_are_sam2_configs_and_plain_file_names():
    hub = {"source": "hub", "repo_id": "facebook/sam2.1-hiera-large", "revision": SHA}
    text = errors_text(
        {"tiny": {}, "paper": {"segmenter": {**hub, "sam2_config": "/tmp/evil.yaml", "checkpoint": "x.pt"}}}
    )
    assert "segmenter.sam2_config='/tmp/evil.yaml' is not one of sam2's packaged configs" in text
    assert "configs/sam2.1/sam2.1_hiera_l.yaml" in text  # what is allowed
    text = errors_text(
        {
            "tiny": {},
            "paper": {
                "segmenter": {**hub, "sam2_config": "configs/sam2.1/sam2.1_hiera_l.yaml", "checkpoint": "../x.pt"}
            },
        }
    )
    assert "segmenter.checkpoint='../x.pt' is not a plain file name" in text
    text = errors_text(
        {"tiny": {"segmenter": {"source": "tiny", "seed": 0, "sam2_config": "sam2.1_hiera_l.yaml"}}, "paper": {}}
    )
    assert "segmenter.sam2_config='sam2.1_hiera_l.yaml'" in text
