"""Helpers for the end-to-end tests: git repos of the project, and dvc/git run as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@localhost",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@localhost",
}


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        **GIT_ENV,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(env or {}),
    }
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check, env)


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd, check)


def clone(tmp: Path) -> Path:
    """The project's files (tracked and new, none ignored) in a new git repo with one commit."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    )
    target = tmp / "repo"
    for name in files.stdout.splitlines():
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    git("init", "-q", "-b", "main", cwd=target)
    git("add", "-A", cwd=target)
    git("commit", "-qm", "fresh clone", cwd=target)
    return target


def ran_stages(output: str) -> list[str]:
    """The stages a dvc command ran, from its 'Running stage' lines, sorted."""
    return sorted(line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage"))


def dvc_params(stage: dict) -> set[str]:
    """A dvc.yaml stage's params: params.yaml's keys as written, another file's as `file:key`."""
    found: set[str] = set()
    for entry in stage.get("params", []):
        if isinstance(entry, dict):
            found |= {f"{file}:{key}" for file, keys in entry.items() for key in keys}
        else:
            found.add(entry)
    return found


def set_params(repo: Path, values: dict[str, object]) -> None:
    """Set existing keys (dotted) in whichever of params.yaml and method.yaml holds each, as a user edits them."""
    import yaml

    files = {name: yaml.safe_load((repo / name).read_text()) for name in ("params.yaml", "method.yaml")}
    for key, value in values.items():
        *parents, last = key.split(".")
        holders = [name for name, raw in files.items() if _holds(raw, [*parents, last])]
        assert len(holders) == 1, f"{key}: in {holders or 'neither params file'}"
        node = files[holders[0]]
        for part in parents:
            node = node[part]
        node[last] = value
    for name, raw in files.items():
        (repo / name).write_text(yaml.safe_dump(raw, sort_keys=False))


def _holds(raw: object, path: list[str]) -> bool:
    for part in path:
        if not isinstance(raw, dict) or part not in raw:
            return False
        raw = raw[part]
    return True
