"""Real servers on localhost for testing DVC remotes: OpenSSH's sshd and a read-only HTTP server.

Both are plain context managers (`start_sshd`, `serve_http`), used by the session fixtures below
and by `python -m benchmarks.shards`. Nothing here reads or writes the user's ~/.ssh.

dvc-ssh (4.3.0) has no setting for host-key checking: its asyncssh client trusts only the keys
in `~/.ssh/known_hosts` (or the `UserKnownHostsFile` of `~/.ssh/config`), `~` read from $HOME.
So the SSH server comes with a temporary home whose `.ssh/known_hosts` holds its host key, and
DVC must run with `HOME` set to it (`SSHServer.env`); the remote itself needs `port`, `user`
and `keyfile` (`SSHServer.remote_settings`).
"""

from __future__ import annotations

import functools
import http.server
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
SSHD_MISSING = (
    f"{SSHD} not found: the SSH remote tests need OpenSSH's server; install it with "
    "`apt-get install -y --no-install-recommends openssh-server` (.ci/run does this on CI)"
)
# As root, sshd refuses to start without its privilege separation directory; Debian's init
# script or systemd unit creates it, which does not happen in a container or on CI.
PRIVSEP_DIR = Path("/run/sshd")
HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class SSHServer:
    """A running sshd that accepts `keyfile` for `user` on HOST:`port`."""

    host: str
    port: int
    user: str
    keyfile: Path  # the client's private ed25519 key (its `.pub` is the only authorized key)
    known_hosts: Path  # one line trusting the server's host key at [host]:port
    home: Path  # a HOME for DVC: `.ssh/known_hosts` is `known_hosts`, nothing else
    ssh_config: Path  # for OpenSSH clients (ssh -F, scp -F, rsync -e): host, port, user, key, known_hosts
    log: Path  # sshd's own log (-e): read it when a connection is refused

    def url(self, path: str | os.PathLike) -> str:
        """The ssh:// URL of an absolute path on this server (port and user go in the settings)."""
        return f"ssh://{self.host}{Path(path).resolve()}"

    @property
    def remote_settings(self) -> dict[str, str]:
        """`dvc remote modify <name> <option> <value>` for each item: what the remote needs."""
        return {"port": str(self.port), "user": self.user, "keyfile": str(self.keyfile)}

    @property
    def env(self) -> dict[str, str]:
        """Merge into the environment of DVC processes that talk to this server: HOME only.

        asyncssh finds known_hosts through $HOME (see the module docstring); git then finds no
        ~/.gitconfig either, so commits need GIT_AUTHOR_*/GIT_COMMITTER_* from the caller.
        """
        return {"HOME": str(self.home)}

    def ssh_args(self) -> list[str]:
        """`ssh` with this server's client settings and no prompts; append a command to run one."""
        return ["ssh", "-F", str(self.ssh_config), self.host]


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def _sshd_config(root: Path, port: int, user: str) -> Path:
    # Only what this server needs; no system file is read (-f), so the host's sshd settings
    # (PAM, banners, allowed users) cannot interfere.
    lines = [
        f"ListenAddress {HOST}:{port}",
        f"HostKey {root / 'host_key'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        f"PidFile {root / 'sshd.pid'}",
        f"AllowUsers {user}",
        "StrictModes no",  # the keys live under /tmp (world-writable), which StrictModes rejects
        "UsePAM no",  # PAM needs root; key authentication needs nothing from it
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",  # CI runs as root: keys only
        "Subsystem sftp internal-sftp",  # DVC's transfers go over SFTP
        "MaxSessions 64",  # dvc-ssh opens one SFTP channel per job on a single connection
        "MaxStartups 64",
        "PrintMotd no",
        "LogLevel INFO",
    ]
    path = root / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _client_files(root: Path, port: int, user: str) -> tuple[Path, Path, Path]:
    """known_hosts, a HOME holding it for asyncssh, and an OpenSSH client config."""
    host_key = (root / "host_key.pub").read_text().split()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {host_key[0]} {host_key[1]}\n")
    home_ssh = root / "home" / ".ssh"
    home_ssh.mkdir(parents=True, exist_ok=True)
    shutil.copy(known_hosts, home_ssh / "known_hosts")
    ssh_config = root / "ssh_config"
    ssh_config.write_text(
        f"Host {HOST}\n  Port {port}\n  User {user}\n  IdentityFile {root / 'client_key'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  LogLevel ERROR\n"
    )
    return known_hosts, root / "home", ssh_config


def _wait_for_banner(port: int, process: subprocess.Popen, log: Path) -> None:
    """Return once sshd answers with its SSH banner; raise with its log if it exits or stalls."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode} before listening on {HOST}:{port}; {log}:\n{log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on {HOST}:{port} within {START_TIMEOUT_S:.0f} s; {log}:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def start_sshd(root: Path) -> Iterator[SSHServer]:
    """Run sshd in the foreground on a free localhost port as the current user, keys in `root`.

    Raises FileNotFoundError (naming the package to install) when sshd is not installed.
    """
    if not SSHD.is_file():
        raise FileNotFoundError(SSHD_MISSING)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    _keygen(root / "host_key")
    _keygen(root / "client_key")
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    log = root / "sshd.log"
    for _attempt in range(5):  # the free port can be taken between probing and sshd's bind
        port = free_port()
        config = _sshd_config(root, port, user)
        with open(log, "w") as log_file:
            # sshd must be started by absolute path: it re-executes itself for each connection.
            process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_for_banner(port, process, log)
        except RuntimeError:
            _stop(process)
            if "Address already in use" in log.read_text():
                continue
            raise
        break
    else:
        raise RuntimeError(f"sshd found no free port on {HOST} in 5 attempts; {log}:\n{log.read_text()}")
    try:
        known_hosts, home, ssh_config = _client_files(root, port, user)
        yield SSHServer(HOST, port, user, root / "client_key", known_hosts, home, ssh_config, log)
    finally:
        _stop(process)


class ReadOnlyHandler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD of files under the directory; every write method answers 405."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per object on stderr would bury the test output

    def _refuse(self) -> None:
        self.send_error(405, "read-only server: only GET and HEAD are allowed")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


@dataclass(frozen=True)
class HTTPServer:
    directory: Path
    url: str  # http://127.0.0.1:<port> (no trailing slash), serving `directory` at its root


@contextmanager
def serve_http(directory: str | os.PathLike) -> Iterator[HTTPServer]:
    """A threaded read-only HTTP server over `directory` on a free localhost port."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise NotADirectoryError(f"serve_http: {directory} is not a directory to serve")
    handler = functools.partial(ReadOnlyHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"http {directory}", daemon=True)
    thread.start()
    try:
        yield HTTPServer(directory, f"http://{HOST}:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- pytest fixtures (import them into conftest.py) -------------------------------------------

@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory) -> Iterator[SSHServer]:
    """One sshd for the session; a missing sshd fails the test (CI must install openssh-server)."""
    if not SSHD.is_file():
        pytest.fail(SSHD_MISSING, pytrace=False)
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def http_server() -> Iterator[Callable[[str | os.PathLike], HTTPServer]]:
    """`http_server(directory)` starts a read-only server over it; all stop at session end."""
    with ExitStack() as stack:
        yield lambda directory: stack.enter_context(serve_http(directory))
