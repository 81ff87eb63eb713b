"""The default profile end to end, as a newcomer runs it: `dvc repro` in a fresh clone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from varireal.io import read_table

REPO = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@localhost", "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@localhost"}


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def clone(tmp: Path) -> Path:
    """The project's files (tracked and new, none ignored) in a new git repo with one commit."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True)
    target = tmp / "repo"
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    run(["git", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-qm", "fresh clone"], target)
    return target


@pytest.fixture(scope="module")
def repro(tmp_path_factory) -> Path:
    repo = clone(tmp_path_factory.mktemp("pipeline"))
    dvc("repro", cwd=repo)
    return repo


def test_repro_builds_every_declared_output(repro):
    manifest = read_table(repro / "data/real/demo/manifest.csv")
    assert set(manifest["split"]) == {"train", "val", "test"}
    masks = read_table(repro / "data/masks/demo/manifest.csv")
    assert sorted(masks["id"]) == sorted(manifest.query("split == 'train'")["id"])
    assert all((repro / "data/masks/demo" / p).exists() for p in masks["mask_path"] if p)
    lock = json.loads((repro / "data/models/lock.json").read_text())
    assert {"detector", "segmenter", "llm"} <= set(lock["roles"])
    prompts = json.loads((repro / "data/prompts/demo.json").read_text())
    assert prompts["source"] == "curated"
    assert set(prompts["lists"]["color"]) == set(manifest["class_name"])
    assert json.loads((repro / "reports/masks.json").read_text())["images"] == len(masks)


def test_second_repro_has_nothing_to_do(repro):
    result = dvc("repro", cwd=repro)
    assert "Data and pipelines are up to date" in result.stdout + result.stderr


def test_dag_runs_fetch_and_models_into_masks_and_prompts(repro):
    dag = dvc("dag", "--dot", cwd=repro).stdout
    for upstream, downstream in (("fetch", "masks"), ("models", "masks"), ("fetch", "prompts"), ("models", "prompts")):
        assert f'"{upstream}" -> "{downstream}"' in dag, dag


def test_paper_profile_dry_run_lists_the_stages_without_touching_the_workspace(repro):
    # `-f`: plain `exp run --dry` trips over outputs its temp dir has not checked out (DVC #10135).
    before = (repro / "params.yaml").read_text()
    result = dvc("exp", "run", "-S", "profile=paper", "--dry", "-f", cwd=repro)
    out = result.stdout + result.stderr
    for stage in ("fetch", "models", "masks", "prompts"):
        assert f"Running stage '{stage}'" in out, out
    assert (repro / "params.yaml").read_text() == before
    assert not (repro / "data/models/paper").exists()


def test_bad_params_stop_the_stage_naming_the_key(repro, tmp_path):
    repo = clone(tmp_path)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("profile: tiny", "profile: tiyn"))
    result = run([sys.executable, "-m", "stages.fetch"], repo, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "profile = 'tiyn'" in result.stderr and "'tiny' or 'paper'" in result.stderr


def test_killed_mask_stage_resumes_on_repro(tmp_path):
    repo = clone(tmp_path)
    params = repo / "params.yaml"
    settings = yaml.safe_load(params.read_text())
    settings["masks"]["tiny"]["batch_size"] = 1  # many small batches: the kill lands mid-stage
    params.write_text(yaml.safe_dump(settings, sort_keys=False))
    dvc("repro", "fetch", "models", cwd=repo)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    worker = subprocess.Popen([sys.executable, "-m", "stages.masks"], cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = repo / "data/masks/demo/records"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 3:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 3 <= len(done) < len(read_table(repo / "data/real/demo/manifest.csv").query("split == 'train'"))
    dvc("repro", cwd=repo)
    assert {name: (records / name).stat().st_mtime_ns for name in done} == done
    assert not list((repo / "data/masks/demo").rglob(".tmp-*"))
