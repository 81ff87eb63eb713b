"""Sharing the synthetic sets as a lab does: push over SSH, pull over read-only HTTP, retrain only.

Real servers on localhost (an SSH/SFTP server that the tests start with asyncssh, an HTTP
server over the same storage), real git clones, and each colleague on a machine of their own:
an empty weights cache, so anything a command builds or downloads shows.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
from pipeline_repo import dvc, git, ran_stages

UP_TO_DATE = "Data and pipelines are up to date"
REPO = Path(__file__).resolve().parents[1]


def remotes_set_up(text: str) -> dict[str, bool]:
    """Each remote a `dvc remote add` line of `text` names, and whether a `dvc remote modify` line
    turns its verify on."""
    added, verified = {}, set()
    for line in re.findall(r"dvc remote (?:add|modify)[^\n&#]*", text):
        words = [w for w in shlex.split(line)[3:] if not w.startswith("-")]
        if line.startswith("dvc remote add"):
            added[words[0]] = False
        elif words[1:] == ["verify", "true"]:
            verified.add(words[0])
    return {name: name in verified for name in added}


@pytest.mark.parametrize(
    "path", ["docs/sharing.md", ".github/workflows/pr-report.yml"], ids=["sharing.md", "pr-report.yml"]
)
def test_every_remote_the_docs_and_the_workflow_set_up_verifies_what_it_pulls(path):
    remotes = remotes_set_up((REPO / path).read_text())
    assert remotes, f"{path} sets up no remote any more: update this test"
    assert all(remotes.values()), f"{path}: remotes without `verify true`: {[n for n, v in remotes.items() if not v]}"


@pytest.fixture(scope="module")
def published(repro, tmp_path_factory, ssh_server, http_server) -> Path:
    """The maintainer's repo: the built study committed and pushed over SSH, with the read-only
    HTTP view of the same storage committed as the default remote."""
    root = tmp_path_factory.mktemp("sharing")
    maintainer, storage = root / "maintainer", root / "storage"
    shutil.copytree(repro, maintainer, symlinks=True)
    storage.mkdir()
    dvc("remote", "add", "--local", "storage", ssh_server.url(storage), cwd=maintainer)
    for option, value in {**ssh_server.remote_settings, "verify": "true"}.items():
        dvc("remote", "modify", "--local", "storage", option, value, cwd=maintainer)
    dvc("remote", "add", "-d", "public", http_server(storage).url, cwd=maintainer)
    dvc("remote", "modify", "public", "verify", "true", cwd=maintainer)  # as docs/sharing.md sets it up
    git("add", "-A", cwd=maintainer)
    git("commit", "-qm", "the study, built", cwd=maintainer)
    dvc("push", "-r", "storage", cwd=maintainer, env=ssh_server.env)
    return maintainer


def colleague(published: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh clone on a machine whose caches are empty; the env its commands run with."""
    repo = tmp_path / "colleague"
    git("clone", "-q", str(published), str(repo), cwd=tmp_path)
    caches = {"VARIREAL_CACHE": str(tmp_path / "varireal-cache"), "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    return repo, caches


def built_roles(caches: dict[str, str]) -> list[str]:
    tiny = Path(caches["VARIREAL_CACHE"]) / "tiny"
    return sorted(p.name for p in tiny.iterdir()) if tiny.is_dir() else []


def test_a_pulled_clone_is_up_to_date_and_rebuilds_nothing(published, tmp_path):
    repo, caches = colleague(published, tmp_path)
    dvc("pull", cwd=repo, env=caches)
    for name in (
        "data/models/lock.json",
        "data/synthetic/texture/infeasible/manifest.parquet",
        "data/train/adapter.safetensors",
    ):
        assert (repo / name).read_bytes() == (published / name).read_bytes(), name
    assert UP_TO_DATE in dvc("status", cwd=repo, env=caches).stdout
    assert UP_TO_DATE in dvc("repro", cwd=repo, env=caches).stdout
    assert built_roles(caches) == [] and not Path(caches["HF_HUB_CACHE"]).exists()


def test_an_ablation_on_a_fresh_clone_pulls_and_runs_only_train_and_evaluate(published, tmp_path):
    repo, caches = colleague(published, tmp_path)
    out = dvc("exp", "run", "-S", "feas=infeasible", "--pull", "--allow-missing", cwd=repo, env=caches).stdout
    assert ran_stages(out) == ["evaluate", "train"], out
    assert built_roles(caches) == ["clip"]  # the classifier only: no generation model
    assert not (repo / "data/edits/background").exists() or not any((repo / "data/edits/background").rglob("*.tar"))
    assert (repo / "data/synthetic/background/infeasible/manifest.parquet").is_file()


def test_a_push_to_the_read_only_remote_is_refused(published, tmp_path):
    repo, caches = colleague(published, tmp_path)
    (repo / "notes.txt").write_text("a colleague's file\n")
    dvc("add", "notes.txt", cwd=repo, env=caches)
    result = dvc("push", cwd=repo, env=caches, check=False)
    assert result.returncode != 0


def wait_for_queue(repo: Path, timeout_s: float = 400) -> str:
    """`dvc queue status` once nothing is queued or running (or the timeout passed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = dvc("queue", "status", cwd=repo).stdout
        if ("Queued" not in status and "Running" not in status) or time.monotonic() > deadline:
            return status
        time.sleep(2)


def test_a_queued_attribute_and_feasibility_experiment_runs_only_train_and_evaluate(published, tmp_path, model_caches):
    repo = tmp_path / "queue"
    shutil.copytree(published, repo, symlinks=True)
    before = {p: p.stat().st_mtime_ns for p in sorted(model_caches["VARIREAL_CACHE"].rglob("*"))}
    dvc("exp", "run", "--queue", "-S", "attr=color", "-S", "feas=infeasible", cwd=repo)
    dvc("queue", "start", cwd=repo)
    try:
        status = wait_for_queue(repo)
        assert "Success" in status, status
        name = next(line.split()[1] for line in status.splitlines() if "Success" in line)
        log = dvc("queue", "logs", name, cwd=repo).stdout
    finally:
        dvc("queue", "stop", "--kill", cwd=repo, check=False)  # no idle worker outlives the test
    assert ran_stages(log) == ["evaluate", "train"], log
    table = dvc("exp", "show", "--md", cwd=repo).stdout
    assert "color" in table and "infeasible" in table and "top1" in table, table
    assert {p: p.stat().st_mtime_ns for p in sorted(model_caches["VARIREAL_CACHE"].rglob("*"))} == before
