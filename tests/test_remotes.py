"""DVC remotes against real servers: a maintainer pushes over SSH, a colleague pulls over HTTP.

Both remotes point at the same storage directory: the SSH server (asyncssh, started by the test
in this process, see servers.py) writes it over SFTP, the HTTP server reads it.
Transfers run `dvc` as a new process, as a user would; bookkeeping commands (init, remote,
add, status) call the same CLI entry point in this process, because each new `dvc` process
costs about 2 s of imports here and the test should stay well under 30 s.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers import HTTPServer, SSHServer

GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@localhost",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@localhost",
}
# The data set's files: nested folders, binary bytes, an empty file and a name with a space.
FILES = {
    "a.png": bytes(range(256)) * 40,
    "b.json": b'{"class": "cat", "value": "neon pink"}\n',
    "sub/c.png": os.urandom(20_000),
    "sub/deeper/d e.txt": b"a name with a space\n",
    "empty.txt": b"",
}


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **GIT_ENV, "DVC_NO_ANALYTICS": "1", **(env or {})}
    full_env.pop("SSH_AUTH_SOCK", None)  # only the test key may be offered, never a user's agent
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}) in {cwd}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def dvc(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, env, check)


def dvc_main(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dvc <args>` through dvc's CLI entry point in this process (its messages go to the log)."""
    from dvc.cli import main

    with monkeypatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("DVC_NO_ANALYTICS", "1")
        code = main(list(args))
    assert code == 0, f"dvc {' '.join(args)} failed ({code}) in {cwd}: see the captured log above"


def dvc_status(repo: Path, cloud: bool = False) -> dict:
    """What `dvc status --json [--cloud]` prints: {} when nothing changed."""
    from dvc.repo import Repo

    with Repo(str(repo)) as project:
        return project.status(cloud=cloud)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd)


def write_files(root: Path) -> None:
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def read_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def use_ssh_remote(repo: Path, storage: Path, ssh: SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SSH remote `storage` as docs/sharing.md sets it up: the default, --local, with verify on."""
    dvc_main("remote", "add", "-f", "-d", "--local", "storage", ssh.url(storage), cwd=repo, monkeypatch=monkeypatch)
    for option, value in {**ssh.remote_settings, "verify": "true"}.items():
        dvc_main("remote", "modify", "--local", "storage", option, value, cwd=repo, monkeypatch=monkeypatch)


def maintainer_repo(root: Path, storage: Path, ssh: SSHServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC repo with one tracked directory, pushed to `storage` over SSH."""
    repo = root / "maintainer"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    dvc_main("init", "-q", cwd=repo, monkeypatch=monkeypatch)
    write_files(repo / "data" / "set")
    dvc_main("add", "-q", "data/set", cwd=repo, monkeypatch=monkeypatch)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "data set", cwd=repo)
    # --local: the maintainer's SSH login stays out of git (.dvc/config.local is ignored).
    use_ssh_remote(repo, storage, ssh, monkeypatch)
    dvc("push", cwd=repo, env=ssh.env)
    return repo


def colleague_clone(root: Path, maintainer: Path, http: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git clone of the maintainer's repo with the HTTP remote committed as its default, verifying."""
    repo = root / "colleague"
    git("clone", "-q", str(maintainer), str(repo), cwd=root)
    dvc_main("remote", "add", "-d", "public", http.url, cwd=repo, monkeypatch=monkeypatch)
    # verify: each object's content is hashed on download, so a damaged one fails the pull
    dvc_main("remote", "modify", "public", "verify", "true", cwd=repo, monkeypatch=monkeypatch)
    git("commit", "-qam", "public read-only remote", cwd=repo)
    return repo


def test_push_over_ssh_pull_over_http(tmp_path, ssh_server, http_server, monkeypatch) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    maintainer = maintainer_repo(tmp_path, storage, ssh_server, monkeypatch)
    assert any((storage / "files" / "md5").rglob("*.dir")), f"dvc push over SSH left no .dir object under {storage}"
    assert "storage" not in (maintainer / ".dvc" / "config").read_text(), "the SSH remote must stay in config.local"

    colleague = colleague_clone(tmp_path, maintainer, http_server(storage), monkeypatch)
    assert not (colleague / "data" / "set").exists()
    dvc("pull", cwd=colleague)
    assert read_files(colleague / "data" / "set") == FILES
    assert dvc_status(colleague) == {}, "the pulled workspace differs from what git and DVC track"
    assert dvc_status(colleague, cloud=True) == {}, "the HTTP remote lacks objects the clone tracks"

    # A colleague's new data cannot reach the read-only HTTP remote, and DVC says so.
    (colleague / "data" / "set" / "new.png").write_bytes(os.urandom(1000))
    dvc_main("add", "-q", "data/set", cwd=colleague, monkeypatch=monkeypatch)
    stored = sorted(storage.rglob("*"))
    refused = dvc("push", cwd=colleague, check=False)
    assert refused.returncode != 0, (
        f"dvc push to the read-only HTTP remote succeeded:\n{refused.stdout}\n{refused.stderr}"
    )
    message = refused.stdout + refused.stderr
    assert "failed to push" in message and "405" in message and "read-only" in message, message
    assert sorted(storage.rglob("*")) == stored, "the refused push changed the storage directory"


def flip_one_byte(storage: Path, data: bytes) -> Path:
    """Corrupt the remote's copy of `data` in place, keeping its size, as a failing disk or a bad
    copy does: the object's name (its md5) and size stay, so no listing or index notices."""
    digest = hashlib.md5(data).hexdigest()
    stored = storage / "files" / "md5" / digest[:2] / digest[2:]
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    stored.write_bytes(bytes(damaged))
    return stored


@pytest.mark.parametrize("over", ["ssh", "http"])
def test_a_flipped_byte_on_the_remote_fails_the_pull_and_stays_out_of_the_cache(
    over, tmp_path, ssh_server, http_server, monkeypatch
) -> None:
    storage = tmp_path / "storage"
    storage.mkdir()
    maintainer = maintainer_repo(tmp_path, storage, ssh_server, monkeypatch)
    flip_one_byte(storage, FILES["sub/c.png"])
    colleague = colleague_clone(tmp_path, maintainer, http_server(storage), monkeypatch)
    if over == "ssh":
        use_ssh_remote(colleague, storage, ssh_server, monkeypatch)
    pulled = dvc("pull", cwd=colleague, env=ssh_server.env if over == "ssh" else None, check=False)

    message = pulled.stdout + pulled.stderr
    assert pulled.returncode != 0, f"dvc pull of a corrupted object exited 0:\n{message}"
    assert "data/set" in message, message
    assert not (colleague / "data" / "set").exists(), "a damaged set was checked out"
    digest = hashlib.md5(FILES["sub/c.png"]).hexdigest()
    assert not (colleague / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).exists(), (
        "the damaged object entered the cache under its claimed md5"
    )
