"""resolve_models: every role in place, a lock of what was used, no rebuild on rerun, clear hub failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from varireal.models.errors import LockError, MissingWeightsError, ModelDirError
from varireal.models.load import load_detector, load_llm, load_segmenter
from varireal.models.lock import MARKER, file_hashes, read_lock, resolve_models
from varireal.models.spec import ModelSpec

TINY = {role: ModelSpec(source="tiny", seed=0) for role in ("detector", "segmenter", "llm")}
DINO_SHA = "12bdfa3120f3e7ec7b434d90674b3396eccf88eb"


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A repository root with every tiny role resolved once under data/models."""
    repo = tmp_path_factory.mktemp("repo")
    lock = resolve_models("tiny", TINY, repo / "data/models", repo_root=repo)
    return repo, lock


def test_lock_records_every_role(repo):
    repo, lock = repo
    written = json.loads((repo / "data/models/lock.json").read_text())
    assert written == lock and lock["profile"] == "tiny" and lock["root"] == "data/models"
    classes = {role: entry["class_name"] for role, entry in lock["roles"].items()}
    assert classes == {
        "detector": "GroundingDinoForObjectDetection",
        "segmenter": "SAM2Base",
        "llm": "LlamaForCausalLM",
    }
    for role, entry in lock["roles"].items():
        assert entry["path"] == f"data/models/tiny/{role}"
        assert (entry["source"], entry["seed"], entry["repo_id"], entry["revision"]) == ("tiny", 0, None, None)
        assert entry["files"] == file_hashes(repo / entry["path"]) and list(entry["files"]) == sorted(entry["files"])
        assert MARKER not in entry["files"]
    assert lock["packages"]["transformers"] and lock["packages"]["sam2"]


def test_read_lock_paths_load_and_fingerprints(repo, monkeypatch):
    repo, _ = repo
    monkeypatch.chdir(repo.parent)  # paths resolve against the repo root, wherever we are
    lock = read_lock(repo / "data/models/lock.json")
    assert (repo.parent / lock.path("llm")).resolve() == (repo / "data/models/tiny/llm").resolve()
    processor, detector = load_detector(lock.path("detector"), "cpu")
    assert type(load_segmenter(lock.path("segmenter"), "cpu")).__name__ == "SAM2ImagePredictor"
    assert len(lock.fingerprint("detector", "segmenter")) == 64
    assert lock.fingerprint("detector", "segmenter") == lock.fingerprint("segmenter", "detector")
    assert lock.fingerprint("detector") != lock.fingerprint("segmenter")
    assert lock.record("llm")["class_name"] == "LlamaForCausalLM"
    with pytest.raises(LockError, match="role 'vlm' is not in the lock"):
        lock.path("vlm")
    with pytest.raises(LockError, match="not found; run `dvc repro models`"):
        read_lock(repo / "nowhere/lock.json")


def test_rerun_reuses_directories_and_rewrites_the_same_lock(repo):
    repo, lock = repo
    root = repo / "data/models"
    before, lock_bytes = stamps(root / "tiny"), (root / "lock.json").read_bytes()
    (root / "tiny" / ".tmp-llm-killed").mkdir()  # what a killed build leaves behind
    again = resolve_models("tiny", TINY, root, repo_root=repo)
    assert again == lock and (root / "lock.json").read_bytes() == lock_bytes
    assert stamps(root / "tiny") == before
    assert not (root / "tiny" / ".tmp-llm-killed").exists()


def test_changed_seed_or_damaged_files_rebuild_only_that_role(tmp_path):
    root = tmp_path / "models"
    specs = {"llm": ModelSpec(source="tiny", seed=0)}
    first = resolve_models("tiny", specs, root, repo_root=tmp_path)["roles"]["llm"]
    second = resolve_models("tiny", {"llm": ModelSpec(source="tiny", seed=3)}, root, repo_root=tmp_path)["roles"]["llm"]
    assert second["seed"] == 3 and second["files"]["model.safetensors"] != first["files"]["model.safetensors"]
    with open(root / "tiny/llm/model.safetensors", "ab") as handle:  # damaged: the size changed
        handle.write(b"\0")
    third = resolve_models("tiny", {"llm": ModelSpec(source="tiny", seed=3)}, root, repo_root=tmp_path)["roles"]["llm"]
    assert third["files"] == second["files"] == file_hashes(root / "tiny/llm")
    (root / "tiny/llm/tokenizer.json").unlink()  # incomplete: the loader says so, a rerun repairs it
    with pytest.raises(ModelDirError, match="llm: model directory .* is incomplete"):
        load_llm(root / "tiny/llm", "cpu")
    resolve_models("tiny", {"llm": ModelSpec(source="tiny", seed=3)}, root, repo_root=tmp_path)
    assert load_llm(root / "tiny/llm", "cpu")[0] is not None


def test_hub_weights_missing_offline_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(source="hub", repo_id="IDEA-Research/grounding-dino-base", revision=DINO_SHA)
    with pytest.raises(MissingWeightsError) as info:
        resolve_models("paper", {"detector": spec}, tmp_path / "models", repo_root=tmp_path)
    message = str(info.value)
    role_dir = tmp_path / "models" / "paper" / "detector"
    for part in (
        "detector",
        "IDEA-Research/grounding-dino-base",
        DINO_SHA,
        "HF_HUB_OFFLINE",
        str(role_dir),
        f"hf download IDEA-Research/grounding-dino-base --revision {DINO_SHA} --local-dir {role_dir}",
        "copy",
    ):
        assert part in message
    assert not (tmp_path / "models" / "lock.json").exists() and not role_dir.exists()


def test_hub_files_copied_by_hand_are_adopted_and_hashed(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo, _ = repo
    sha = "a09a35458c702b33eeacc393d103063234e8bc28"
    spec = ModelSpec(source="hub", repo_id="Qwen/Qwen2.5-7B-Instruct", revision=sha)
    role_dir = tmp_path / "models" / "paper" / "llm"
    shutil.copytree(repo / "data/models/tiny/llm", role_dir, ignore=shutil.ignore_patterns(MARKER))
    # what `hf download --local-dir` leaves: metadata naming the commit (another one here first)
    meta = role_dir / ".cache/huggingface/download/config.json.metadata"
    meta.parent.mkdir(parents=True)
    meta.write_text("0" * 40 + "\netag\n1700000000.0\n")
    with pytest.raises(MissingWeightsError, match="downloaded at commit"):
        resolve_models("paper", {"llm": spec}, tmp_path / "models", repo_root=tmp_path)
    meta.write_text(sha + "\netag\n1700000000.0\n")
    entry = resolve_models("paper", {"llm": spec}, tmp_path / "models", repo_root=tmp_path)["roles"]["llm"]
    assert (entry["source"], entry["repo_id"], entry["revision"], entry["seed"]) == (
        "hub",
        "Qwen/Qwen2.5-7B-Instruct",
        sha,
        None,
    )
    assert entry["class_name"] == "LlamaForCausalLM" and entry["path"] == "models/paper/llm"
    assert not (role_dir / ".cache").exists() and entry["files"] == file_hashes(role_dir)
    assert load_llm(role_dir, "cpu")[1].chat_template


def test_segmenter_checkpoint_copied_by_hand_gets_its_sam2_json(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo, _ = repo
    spec = ModelSpec(
        source="hub",
        repo_id="facebook/sam2.1-hiera-large",
        revision="665f8e2ad61cf5f53d65644ff27c8ee525124610",
        sam2_config="configs/sam2.1/sam2.1_hiera_l.yaml",
        checkpoint="sam2.1_hiera_large.pt",
    )
    role_dir = tmp_path / "models" / "paper" / "segmenter"
    with pytest.raises(
        MissingWeightsError,
        match="(?s)facebook/sam2.1-hiera-large at revision 665f8e2a.*--include 'sam2.1_hiera_large.pt'",
    ):
        resolve_models("paper", {"segmenter": spec}, tmp_path / "models", repo_root=tmp_path)
    role_dir.mkdir(parents=True)
    (role_dir / "sam2.1_hiera_large.pt").write_bytes(b"stand-in: adoption checks presence, loading checks content")
    entry = resolve_models("paper", {"segmenter": spec}, tmp_path / "models", repo_root=tmp_path)["roles"]["segmenter"]
    assert json.loads((role_dir / "sam2.json").read_text()) == {
        "config": "configs/sam2.1/sam2.1_hiera_l.yaml",
        "hydra_overrides": [],
        "checkpoint": "sam2.1_hiera_large.pt",
        "image_size": 1024,
    }
    assert entry["class_name"] == "SAM2Base" and sorted(entry["files"]) == ["sam2.1_hiera_large.pt", "sam2.json"]


def test_offline_error_says_what_an_existing_directory_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(source="hub", repo_id="IDEA-Research/grounding-dino-base", revision=DINO_SHA)
    role_dir = tmp_path / "models" / "paper" / "detector"
    role_dir.mkdir(parents=True)
    (role_dir / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="(?s)has files but lacks: weights .*model.safetensors"):
        resolve_models("paper", {"detector": spec}, tmp_path / "models", repo_root=tmp_path)
    assert sorted(p.name for p in (tmp_path / "models" / "paper").iterdir()) == ["detector"]


def test_download_is_staged_swapped_in_and_not_repeated(repo, tmp_path, monkeypatch):
    """snapshot_download stood in by a copy of the tiny LLM (no network here): the code path around it is real."""
    import fnmatch

    import huggingface_hub

    repo, _ = repo
    source = repo / "data/models/tiny/llm"
    calls = []

    def fake_snapshot_download(repo_id, *, revision, local_dir, allow_patterns, local_files_only=False, **_):
        calls.append((repo_id, revision, Path(local_dir).name, list(allow_patterns)))
        local_dir = Path(local_dir)
        (local_dir / ".cache/huggingface/download").mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.name != MARKER and any(fnmatch.fnmatch(path.name, p) for p in allow_patterns):
                shutil.copy(path, local_dir / path.name)
        return str(local_dir)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    sha = "a09a35458c702b33eeacc393d103063234e8bc28"
    specs = {"llm": ModelSpec(source="hub", repo_id="Qwen/Qwen2.5-7B-Instruct", revision=sha)}
    entry = resolve_models("paper", specs, tmp_path / "models", repo_root=tmp_path)["roles"]["llm"]
    assert calls == [
        ("Qwen/Qwen2.5-7B-Instruct", sha, f".partial-llm-{sha}", ["*.json", "*.safetensors", "*.txt", "*.jinja"])
    ]
    role_dir = tmp_path / "models/paper/llm"
    assert sorted(p.name for p in role_dir.parent.iterdir()) == ["llm"]  # staging renamed into place
    assert not (role_dir / ".cache").exists() and entry["files"] == file_hashes(role_dir)
    assert entry["provenance"] == f"downloaded from the hub at commit {sha}"
    resolve_models("paper", specs, tmp_path / "models", repo_root=tmp_path)
    assert len(calls) == 1  # a rerun finds the directory complete and does not download again
