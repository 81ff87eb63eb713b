"""The models lock: every role recorded down to its file hashes, weights in the machine's caches, never the workspace."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from varireal.models.errors import LockError, MissingWeightsError
from varireal.models.hashes import MARKER, cache_root, file_hashes
from varireal.models.load import load_detector, load_llm, load_segmenter
from varireal.models.lock import read_lock, resolve_models
from varireal.models.spec import ModelSpec

TINY = {role: ModelSpec(source="tiny", seed=0) for role in ("detector", "segmenter", "llm")}
QWEN = ModelSpec(source="hub", repo_id="Qwen/Qwen2.5-7B-Instruct", revision="a09a35458c702b33eeacc393d103063234e8bc28")
SAM = ModelSpec(
    source="hub",
    repo_id="facebook/sam2.1-hiera-large",
    revision="665f8e2ad61cf5f53d65644ff27c8ee525124610",
    sam2_config="configs/sam2.1/sam2.1_hiera_l.yaml",
    checkpoint="sam2.1_hiera_large.pt",
)


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """Every tiny role resolved once; the lock in <repo>/data/models/lock.json."""
    repo = tmp_path_factory.mktemp("repo")
    return repo, resolve_models("tiny", TINY, repo / "data/models")


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch) -> Path:
    """A machine that has never built or downloaded anything (a fresh clone elsewhere, a new CI box)."""
    monkeypatch.setenv("VARIREAL_CACHE", str(tmp_path / "varireal-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


def put_in_hub_cache(spec: ModelSpec, files_from: Path, only: list[str] | None = None) -> Path:
    """Files laid out as `hf download` leaves them in HF_HUB_CACHE: models--org--name/snapshots/<commit>/."""
    snapshot = (
        Path(os.environ["HF_HUB_CACHE"]) / f"models--{spec.repo_id.replace('/', '--')}" / "snapshots" / spec.revision
    )
    snapshot.mkdir(parents=True)
    for path in sorted(files_from.iterdir()):
        if path.name != MARKER and (only is None or path.name in only):
            shutil.copy(path, snapshot / path.name)
    return snapshot


def test_lock_records_every_role_and_no_workspace_path(locked):
    repo, lock = locked
    assert json.loads((repo / "data/models/lock.json").read_text()) == lock
    assert {role: entry["class_name"] for role, entry in lock["roles"].items()} == {
        "detector": "GroundingDinoForObjectDetection",
        "segmenter": "SAM2Base",
        "llm": "LlamaForCausalLM",
    }
    for _role, entry in lock["roles"].items():
        assert (entry["source"], entry["seed"], entry["repo_id"], entry["revision"]) == ("tiny", 0, None, None)
        assert "path" not in entry and list(entry["files"]) == sorted(entry["files"]) and MARKER not in entry["files"]
    assert sorted(p.name for p in (repo / "data/models").iterdir()) == ["lock.json"]  # no weights in the workspace
    assert lock["packages"]["transformers"] and lock["packages"]["sam2"]


def test_locked_roles_load_from_the_cache_and_fingerprints_differ(locked):
    repo, _ = locked
    lock = read_lock(repo / "data/models/lock.json")
    assert lock.path("llm").is_relative_to(cache_root())
    assert file_hashes(lock.path("llm")) == lock.record("llm")["files"]
    load_detector(lock.path("detector"), "cpu")
    assert type(load_segmenter(lock.path("segmenter"), "cpu")).__name__ == "SAM2ImagePredictor"
    assert lock.fingerprint("detector", "segmenter") == lock.fingerprint("segmenter", "detector")
    assert lock.fingerprint("detector") != lock.fingerprint("segmenter")
    with pytest.raises(LockError, match="role 'vlm' is not in .*lock.json"):
        lock.path("vlm")
    with pytest.raises(LockError, match="not found; run `dvc pull"):
        read_lock(repo / "nowhere/lock.json")


def test_rerun_builds_nothing_and_writes_the_same_lock(locked):
    repo, lock = locked
    before, lock_bytes = stamps(cache_root() / "tiny"), (repo / "data/models/lock.json").read_bytes()
    assert resolve_models("tiny", TINY, repo / "data/models") == lock
    assert (repo / "data/models/lock.json").read_bytes() == lock_bytes and stamps(cache_root() / "tiny") == before


def test_a_pulled_lock_builds_only_the_role_a_stage_asks_for(locked, empty_cache):
    repo, _ = locked
    lock = read_lock(repo / "data/models/lock.json")
    llm_dir = lock.path("llm")  # another machine: nothing cached, the lock came from `dvc pull`
    assert llm_dir.is_relative_to(empty_cache / "varireal-cache")
    assert sorted(p.name for p in (empty_cache / "varireal-cache/tiny").iterdir()) == ["llm"]
    assert file_hashes(llm_dir) == lock.record("llm")["files"] and load_llm(llm_dir, "cpu")[1].chat_template


def test_damaged_cache_is_rebuilt_and_a_lock_of_other_bytes_is_refused(locked, empty_cache):
    repo, _ = locked
    lock = read_lock(repo / "data/models/lock.json")
    weights_file = lock.path("llm") / "model.safetensors"
    with open(weights_file, "ab") as handle:
        handle.write(b"\0")
    assert file_hashes(lock.path("llm")) == lock.record("llm")["files"]  # size changed: rebuilt on demand
    other = json.loads((repo / "data/models/lock.json").read_text())
    other["roles"]["llm"]["files"]["model.safetensors"] = "0" * 64  # written by other package versions
    (empty_cache / "lock.json").write_text(json.dumps(other))
    with pytest.raises(
        LockError, match="llm: the tiny build of seed 0 here differs from the lock in model.safetensors"
    ):
        read_lock(empty_cache / "lock.json").path("llm")


def test_hub_weights_missing_offline_raise_a_clear_error(empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(
        source="hub", repo_id="IDEA-Research/grounding-dino-base", revision="12bdfa3120f3e7ec7b434d90674b3396eccf88eb"
    )
    with pytest.raises(MissingWeightsError) as info:
        resolve_models("paper", {"detector": spec}, empty_cache / "models")
    message = str(info.value)
    for part in (
        "detector",
        spec.repo_id,
        spec.revision,
        "HF_HUB_OFFLINE",
        str(empty_cache / "hf-cache"),
        f"hf download {spec.repo_id} --revision {spec.revision} --include '*.json'",
    ):
        assert part in message, message
    assert not (empty_cache / "models/lock.json").exists()


def test_hub_snapshot_in_the_hf_cache_is_locked_verified_and_shared(locked, empty_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be fetched: the cache already has it
    repo, _ = locked
    tiny_llm = read_lock(repo / "data/models/lock.json").path("llm")
    snapshot = put_in_hub_cache(QWEN, tiny_llm)
    entry = resolve_models("paper", {"llm": QWEN}, empty_cache / "models")["roles"]["llm"]
    assert (entry["source"], entry["repo_id"], entry["revision"], entry["class_name"]) == (
        "hub",
        QWEN.repo_id,
        QWEN.revision,
        "LlamaForCausalLM",
    )
    assert entry["files"] == file_hashes(tiny_llm)
    lock = read_lock(empty_cache / "models/lock.json")
    assert lock.path("llm") == snapshot and load_llm(lock.path("llm"), "cpu")[0] is not None
    (snapshot / "tokenizer_config.json").write_text("{}")  # the cache no longer holds the locked bytes
    with pytest.raises(
        LockError,
        match="llm: 1 file.* not the bytes the lock of Qwen/Qwen2.5-7B-Instruct@a09a3545.*\n  tokenizer_config.json: expected sha256",
    ):
        lock.path("llm")


def test_segmenter_from_the_hub_gets_its_sam2_json_beside_the_cache(empty_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = tmp_path / "download"
    source.mkdir()
    (source / "sam2.1_hiera_large.pt").write_bytes(b"stand-in: the lock hashes it, loading checks content")
    snapshot = put_in_hub_cache(SAM, source)
    entry = resolve_models("paper", {"segmenter": SAM}, tmp_path / "models")["roles"]["segmenter"]
    assert sorted(entry["files"]) == ["sam2.1_hiera_large.pt", "sam2.json"]
    view = read_lock(tmp_path / "models/lock.json").path("segmenter")
    assert json.loads((view / "sam2.json").read_text()) == {
        "config": "configs/sam2.1/sam2.1_hiera_l.yaml",
        "hydra_overrides": [],
        "checkpoint": "sam2.1_hiera_large.pt",
        "image_size": 1024,
    }
    assert (view / "sam2.1_hiera_large.pt").resolve() == (snapshot / "sam2.1_hiera_large.pt").resolve()
    assert sorted(p.name for p in snapshot.iterdir()) == ["sam2.1_hiera_large.pt"]  # the hub cache stays as downloaded


def test_a_lock_of_the_old_format_asks_for_a_rerun(tmp_path):
    (tmp_path / "lock.json").write_text(json.dumps({"format": 1, "roles": {}, "root": "data/models"}))
    with pytest.raises(LockError, match="lock format 1, this code reads format 2; rerun `dvc repro models`"):
        read_lock(tmp_path / "lock.json")
