"""Every weight file is checked against the lock's sha256 before it is loaded; `varireal verify` reads every byte.

The tiny CLIP stands for any role: its safetensors file is damaged the way the issue found it,
bytes overwritten at the same size, after which `evaluate` used to run on and report other numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from datasets_fixtures import pets_archives, serve
from typer.testing import CliRunner

from varireal.cli import app
from varireal.datasets.fetch import fetch_dataset
from varireal.models import hashes
from varireal.models.errors import WeightsMismatchError
from varireal.models.hashes import MEMO_NAME, cache_root, file_hashes
from varireal.models.lock import read_lock, resolve_models
from varireal.models.roles import load_role
from varireal.models.spec import ModelSpec
from varireal.settings.fetch import FetchParams, SourceParams

WEIGHTS = "open_clip_model.safetensors"
CLIP_HUB = ModelSpec(source="hub", repo_id="timm/vit_base_patch16_clip_224.openai", revision="0" * 39 + "1")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The tiny CLIP built once into a cache of this module, and its lock in data/models/lock.json."""
    root = tmp_path_factory.mktemp("verify")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VARIREAL_CACHE", str(root / "cache"))
        resolve_models("tiny", {"clip": ModelSpec(source="tiny", seed=0)}, root / "data/models")
    return root


@pytest.fixture()
def repo(built, tmp_path, monkeypatch) -> Path:
    """A workspace with the lock, and a cache of its own holding the build (tests damage it)."""
    shutil.copytree(built / "cache", tmp_path / "cache", symlinks=True)
    shutil.copytree(built / "data", tmp_path / "data")
    monkeypatch.setenv("VARIREAL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def overwrite_same_size(path: Path, keep_mtime: bool = False) -> None:
    """Flip bytes in the middle of the file, in place: same inode, same size."""
    before = path.stat()
    time.sleep(0.02)  # past the file system's timestamp tick, as any real later write is
    with open(path, "r+b") as handle:
        handle.seek(before.st_size // 2)
        data = handle.read(64)
        handle.seek(before.st_size // 2)
        handle.write(bytes(b ^ 0xFF for b in data))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert (after.st_mtime_ns == before.st_mtime_ns) == keep_mtime


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(repo: Path, *args: str):
    return CliRunner().invoke(
        app,
        [
            "verify",
            "--lock",
            str(repo / "data/models/lock.json"),
            "--real",
            str(repo / "data/real"),
            "--downloads",
            str(repo / "data/downloads"),
            *args,
        ],
    )


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["overwrite", "overwrite-restoring-mtime"])
def test_a_tiny_build_overwritten_at_the_same_size_is_rebuilt_from_its_seed_and_said(repo, capsys, keep_mtime):
    lock = read_lock(repo / "data/models/lock.json")
    locked = lock.record("clip")["files"][WEIGHTS]
    weights_file = lock.path("clip") / WEIGHTS  # loaded once: the memo knows the file
    overwrite_same_size(weights_file, keep_mtime)  # os.utime cannot set ctime back: the memo still sees it
    damaged = sha256(weights_file)
    capsys.readouterr()

    model_dir = lock.path("clip")

    err = capsys.readouterr().err
    for part in (
        "clip: the cached tiny build",
        str(model_dir),
        f"{WEIGHTS}: expected sha256 {locked}, found {damaged}",
        "rebuilding it from seed 0 into place",
    ):
        assert part in err, err
    assert file_hashes(model_dir, trust_memo=False) == lock.record("clip")["files"]
    assert load_role("clip", model_dir, "cpu") is not None


def test_a_hub_file_with_other_bytes_stops_naming_role_file_both_hashes_and_the_repair(repo, monkeypatch, tmp_path):
    tiny_clip = read_lock(repo / "data/models/lock.json").path("clip")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    snapshot = tmp_path / "hf/models--timm--vit_base_patch16_clip_224.openai/snapshots" / CLIP_HUB.revision
    shutil.copytree(tiny_clip, snapshot, ignore=shutil.ignore_patterns(hashes.MARKER))
    resolve_models("paper", {"clip": CLIP_HUB}, tmp_path / "paper")
    lock = read_lock(tmp_path / "paper/lock.json")
    assert lock.path("clip") == snapshot
    locked = lock.record("clip")["files"][WEIGHTS]
    overwrite_same_size(snapshot / WEIGHTS)

    with pytest.raises(WeightsMismatchError) as info:
        lock.path("clip")

    message = str(info.value)
    for part in (
        f"clip: 1 file(s) in {snapshot}",
        f"{WEIGHTS}: expected sha256 {locked}, found {sha256(snapshot / WEIGHTS)}",
        f"hf download {CLIP_HUB.repo_id} --revision {CLIP_HUB.revision} --include '{WEIGHTS}' --force-download",
        "dvc repro models -f",
    ):
        assert part in message, message


def test_a_damaged_hub_download_is_never_locked(repo, monkeypatch, tmp_path):
    """huggingface_hub names a large file's blob by the sha256 the hub gave and checks only its size."""
    tiny_clip = read_lock(repo / "data/models/lock.json").path("clip")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    repo_dir = tmp_path / "hf" / "models--timm--vit_base_patch16_clip_224.openai"
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "snapshots" / CLIP_HUB.revision).mkdir(parents=True)
    for name in hashes.on_disk(tiny_clip):
        blob = repo_dir / "blobs" / sha256(tiny_clip / name)
        shutil.copy(tiny_clip / name, blob)
        (repo_dir / "snapshots" / CLIP_HUB.revision / name).symlink_to(f"../../blobs/{blob.name}")
    blob = repo_dir / "blobs" / sha256(tiny_clip / WEIGHTS)
    overwrite_same_size(blob)

    with pytest.raises(
        WeightsMismatchError,
        match=f"not the bytes the hub \\(the blob's name\\) records.*\n  {WEIGHTS}: expected sha256 {blob.name}",
    ):
        resolve_models("paper", {"clip": CLIP_HUB}, tmp_path / "paper")
    assert not (tmp_path / "paper/lock.json").exists()


def test_the_memo_reads_a_file_once_and_again_only_when_its_stat_changes(repo, monkeypatch):
    reads: list[str] = []
    real_sha256 = hashes.sha256_file
    monkeypatch.setattr(hashes, "sha256_file", lambda path: reads.append(Path(path).name) or real_sha256(path))
    lock = read_lock(repo / "data/models/lock.json")
    files = sorted(lock.record("clip")["files"])

    lock.path("clip")  # a cache copied from elsewhere: new inodes, nothing known yet
    assert sorted(reads) == files
    reads.clear()
    model_dir = lock.path("clip")
    assert reads == []  # unchanged: nothing read

    config = model_dir / "open_clip_config.json"
    time.sleep(0.02)
    config.write_bytes(config.read_bytes())  # rewritten with the same bytes: new mtime, read again, no rebuild
    assert lock.path("clip") == model_dir and reads == ["open_clip_config.json"]
    reads.clear()

    (cache_root() / MEMO_NAME).write_text('{"format": 1, "files": {"broken')  # a damaged memo: read everything again
    lock.path("clip")
    assert sorted(reads) == files
    assert json.loads((cache_root() / MEMO_NAME).read_text())["format"] == 1


def test_verify_reads_every_byte_names_each_bad_file_and_fails(repo):
    clean = verify(repo)
    assert clean.exit_code == 0, clean.output
    assert [line.split()[:2] + line.split()[-1:] for line in clean.output.splitlines() if line.startswith("clip")] == [
        ["clip", "tiny", "ok"]
    ]
    assert "all verified" in clean.output

    lock = read_lock(repo / "data/models/lock.json")
    weights_file = lock.path("clip") / WEIGHTS
    overwrite_same_size(weights_file)
    bad = verify(repo)
    assert bad.exit_code == 1, bad.output
    assert (
        f"clip: {weights_file.parent}/{WEIGHTS}: expected sha256 {lock.record('clip')['files'][WEIGHTS]}, found {sha256(weights_file)}"
        in bad.output
    )
    assert [line.split() for line in bad.output.splitlines() if line.startswith("clip ")] == [
        ["clip", "tiny", "2", "1", "1", "0", "0", "BAD"]
    ]

    # What the memo cannot see: bytes changed after they were hashed, under the same metadata (a
    # failing disk). Simulated by a memo that records the locked hash for the damaged file.
    file_hashes(weights_file.parent)
    memo = json.loads((cache_root() / MEMO_NAME).read_text())
    for entry in memo["files"].values():
        if entry["path"] == str(weights_file.resolve()):
            entry["sha256"] = lock.record("clip")["files"][WEIGHTS]
    (cache_root() / MEMO_NAME).write_text(json.dumps(memo))
    assert file_hashes(weights_file.parent) == lock.record("clip")["files"]  # a stage would not notice
    assert verify(repo, "--trust-memo").exit_code == 0
    assert verify(repo).exit_code == 1  # verify reads the bytes

    shutil.rmtree(weights_file.parent)
    absent = verify(repo)
    assert absent.exit_code == 0 and "not on this machine" in absent.output  # built, verified, on first use


def test_verify_rehashes_the_archives_sources_json_records_and_says_what_it_cannot_check(repo):
    archives, _ = pets_archives(repo / "site")
    with serve({f"/pets/{name}": path.read_bytes() for name, path in archives.items()}) as server:
        source = SourceParams(urls=[f"{server.url}/pets/{name}" for name in archives], checksums=[None] * len(archives))
        params = FetchParams(min_side=16, retry_wait_s=0, retries=1, sources={"oxford_pets": source})
        fetch_dataset("oxford_pets", repo / "data/real/oxford_pets", params, repo / "data/downloads")
    result = verify(repo)
    assert result.exit_code == 0, result.output
    rows = [line.split(None, 3) for line in result.output.splitlines() if line.startswith("oxford_pets")]
    assert [row[1:3] for row in rows] == [[name, "ok"] for name in archives] + [["images", "ok"]]

    (repo / "data/downloads/oxford_pets" / next(iter(archives))).write_bytes(b"another release")
    first_image = (repo / "data/real/oxford_pets/manifest.csv").read_text().splitlines()[1].split(",")[1]
    (repo / "data/real/oxford_pets" / first_image).unlink()
    result = verify(repo)
    assert result.exit_code == 1
    assert (
        f"expected sha256 {sha256(archives[next(iter(archives))])}, found {hashlib.sha256(b'another release').hexdigest()}"
        in result.output
    )
    assert "1 of" in result.output and first_image in result.output

    shutil.rmtree(repo / "data/downloads")
    kept = verify(repo)
    assert "is no longer on this machine" in kept.output and kept.exit_code == 1  # still one image missing


def test_verify_names_a_lock_edited_after_dvc_recorded_it(repo):
    """A lock whose recorded sha256 was replaced still matches the weights it names: only dvc.lock's md5 of
    the lock itself catches it."""
    lock_file = repo / "data/models/lock.json"
    record = {"path": "data/models/lock.json", "hash": "md5", "md5": hashlib.md5(lock_file.read_bytes()).hexdigest()}
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"models": {"outs": [record]}}}))
    ok = verify(repo, "--dvc-lock", str(repo / "dvc.lock"))
    assert ok.exit_code == 0 and "the lock: ok" in ok.output

    lock = json.loads(lock_file.read_text())
    lock["roles"]["clip"]["files"][WEIGHTS] = "0" * 64
    lock_file.write_text(json.dumps(lock, indent=2))
    edited = verify(repo, "--dvc-lock", str(repo / "dvc.lock"))
    assert edited.exit_code == 1
    assert "the lock: BAD" in edited.output and "dvc checkout data/models/lock.json" in edited.output
