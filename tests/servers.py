"""Real servers on localhost for testing DVC remotes: an SSH server (asyncssh) and a read-only HTTP server.

Both run in this process, each on its own daemon thread, and are plain context managers
(`start_ssh_server`, `serve_http`), used by the session fixtures below and by
`python -m benchmarks.shards` (which runs the SSH server in a child process instead,
`start_ssh_server_process`, so that its CPU time is not counted as the benchmark's).
Nothing here needs root or a system package, and nothing reads or writes the user's ~/.ssh.

The SSH server is asyncssh's (a dev dependency, as dvc-ssh's client is asyncssh too), not a
mock: DVC connects to it over TCP on 127.0.0.1 and speaks the SSH protocol to it. It accepts
one generated ed25519 client key for the current user (public-key authentication only), and
serves SFTP over the real filesystem with this process's rights (no chroot: DVC remotes use
absolute paths, `ssh://127.0.0.1/abs/path`). It also runs the few commands that dvc-ssh
(sshfs) and the benchmark's baselines execute over SSH (`EXEC_PROGRAMS`) and refuses any other;
no shell, no port or agent forwarding.

dvc-ssh (4.3.0) has no setting for host-key checking: its asyncssh client trusts only the keys
in `~/.ssh/known_hosts` (or the `UserKnownHostsFile` of `~/.ssh/config`), `~` read from $HOME.
So the SSH server comes with a temporary home whose `.ssh/known_hosts` holds its host key, and
DVC must run with `HOME` set to it (`SSHServer.env`); the remote itself needs `port`, `user`
and `keyfile` (`SSHServer.remote_settings`).
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import pwd
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import asyncssh
import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
# Programs a client may run over SSH (exec requests), each run without a shell, argv from
# shlex.split. sshfs (dvc-ssh's file system) runs `uname` and `md5sum <path>` for checksums
# and `cp <a> <b>` to copy within the remote; benchmarks/shards.py downloads with
# `rsync -e ssh`, which runs `rsync --server ...` here. Plain transfers (push, pull, gc)
# are SFTP only; scp's legacy protocol (`scp -O`) is served by asyncssh itself (allow_scp).
EXEC_PROGRAMS = frozenset({"uname", "md5sum", "cp", "rsync"})


@dataclass(frozen=True)
class SSHServer:
    """A running SSH server that accepts `keyfile` for `user` on HOST:`port`."""

    host: str
    port: int
    user: str
    keyfile: Path  # the client's private ed25519 key (its `.pub` is the only authorized key)
    known_hosts: Path  # one line trusting the server's host key at [host]:port
    home: Path  # a HOME for DVC: `.ssh/known_hosts` is `known_hosts`, nothing else
    ssh_config: Path  # for OpenSSH clients (ssh -F, scp -F, rsync -e): host, port, user, key, known_hosts
    log: Path  # the server's log: connections, refused logins, commands run; read it when a transfer fails

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


class _Log:
    """Timestamped lines appended to a file, from the server's event loop thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def __call__(self, message: str) -> None:
        with open(self.path, "a") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")


class _Connections(asyncssh.SSHServer):
    """One per connection: public-key login for `user` with the one authorized key, no other."""

    def __init__(self, user: str, authorized: asyncssh.SSHAuthorizedKeys, log: _Log, live: set) -> None:
        self._user, self._authorized, self._log, self._live = user, authorized, log, live
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._live.add(conn)
        self._log(f"connection from {conn.get_extra_info('peername')}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self._conn)
        self._log(f"connection closed{f': {exc}' if exc else ''}")

    def begin_auth(self, username: str) -> bool:
        if username == self._user:
            self._conn.set_authorized_keys(self._authorized)
        else:  # no keys: every login attempt fails
            self._log(f"login as {username!r} refused: only {self._user!r} may log in")
        return True  # authentication is always required

    def auth_completed(self) -> None:
        self._log(f"{self._user} logged in")


class _SFTPServer(asyncssh.SFTPServer):
    """asyncssh's SFTP server over the whole filesystem, with this process's rights.

    Like OpenSSH's, it ends the session with exit status 0; asyncssh's sends none, and scp in
    SFTP mode (OpenSSH 9.0+, benchmarks/shards.py) then fails although the copy is complete.
    """

    def exit(self) -> None:
        try:
            self.channel.exit(0)
        except OSError:  # the client closed the channel first
            pass


async def _run_command(process: asyncssh.SSHServerProcess, root: Path, log: _Log) -> None:
    """An exec request: run an allowed program (no shell) with the channel as its stdio."""
    command = process.command or ""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if not argv or argv[0] not in EXEC_PROGRAMS:
        what = f"command {command!r}" if command else "an interactive shell"
        log(f"refused {what}")
        process.stderr.write(
            f"this test SSH server serves SFTP and runs only {', '.join(sorted(EXEC_PROGRAMS))}; refused {what}\n".encode()
        )
        process.exit(127)
        await process.wait_closed()
        return
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root / "home"), "LC_ALL": "C"}
    try:
        child = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root, env=env
        )
    except OSError as error:
        log(f"ran {command!r}: {error}")
        process.stderr.write(f"{argv[0]}: {error}\n".encode())
        process.exit(127)
        await process.wait_closed()
        return
    await process.redirect(stdin=child.stdin, stdout=child.stdout, stderr=child.stderr)
    await process.stdout.drain()  # returns once the child's output has all been forwarded
    await process.stderr.drain()
    code = await child.wait()
    log(f"ran {command!r}: exit {code}")
    process.exit(code)
    await process.wait_closed()  # also awaits the forwarding of the channel's input to the child


class _LoopThread:
    """An asyncio event loop running forever on a daemon thread; `call` runs a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=STOP_TIMEOUT_S)
        if not self.thread.is_alive():
            self.loop.close()


def _write_keys(root: Path) -> tuple[asyncssh.SSHKey, asyncssh.SSHKey]:
    """A host key and a client key (OpenSSH format, 0600, as ssh and dvc-ssh expect), both ed25519."""
    keys = []
    for name in ("host_key", "client_key"):
        key = asyncssh.generate_private_key("ssh-ed25519", comment=name)
        path = root / name
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        key.write_private_key(str(path))
        key.write_public_key(str(path) + ".pub")
        keys.append(key)
    return keys[0], keys[1]


def _client_files(root: Path, host_key: asyncssh.SSHKey, port: int, user: str) -> tuple[Path, Path, Path]:
    """known_hosts, a HOME holding it for asyncssh, and an OpenSSH client config."""
    algorithm, blob = host_key.export_public_key("openssh").decode().split()[:2]
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {algorithm} {blob}\n")
    home_ssh = root / "home" / ".ssh"
    home_ssh.mkdir(parents=True, exist_ok=True)
    (home_ssh / "known_hosts").write_text(known_hosts.read_text())
    ssh_config = root / "ssh_config"
    ssh_config.write_text(
        f"Host {HOST}\n  Port {port}\n  User {user}\n  IdentityFile {root / 'client_key'}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  LogLevel ERROR\n"
    )
    return known_hosts, root / "home", ssh_config


@contextmanager
def start_ssh_server(root: Path) -> Iterator[SSHServer]:
    """Run an asyncssh SSH + SFTP server on a free localhost port as the current user, keys in `root`.

    Its event loop runs on a daemon thread of this process; leaving the context closes the
    listener and every open connection, then stops the loop.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    host_key, client_key = _write_keys(root)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key("openssh").decode())
    log = _Log(root / "server.log")
    live: set[asyncssh.SSHServerConnection] = set()

    async def listen() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            HOST,
            0,  # port 0: the kernel picks a free port while binding, so no race with others
            server_factory=lambda: _Connections(user, authorized, log, live),
            server_host_keys=[host_key],
            sftp_factory=_SFTPServer,
            allow_scp=True,
            process_factory=lambda process: _run_command(process, root, log),
            encoding=None,  # exec'd programs' stdio as bytes (rsync's protocol is binary)
            public_key_auth=True,
            password_auth=False,
            kbdint_auth=False,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
        )

    async def close(acceptor: asyncssh.SSHAcceptor) -> None:
        acceptor.close()  # stops listening; open connections stay open until closed below
        await acceptor.wait_closed()
        for conn in list(live):
            conn.close()
        await asyncio.gather(*(conn.wait_closed() for conn in list(live)), return_exceptions=True)

    loop = _LoopThread(f"ssh server {root}")
    try:
        acceptor = loop.call(listen(), START_TIMEOUT_S)
        port = acceptor.get_port()
        log(f"listening on {HOST}:{port} for {user}")
        try:
            known_hosts, home, ssh_config = _client_files(root, host_key, port, user)
            yield SSHServer(HOST, port, user, root / "client_key", known_hosts, home, ssh_config, log.path)
        finally:
            loop.call(close(acceptor), STOP_TIMEOUT_S)
            log("stopped")
    finally:
        loop.stop()


def _serve_until_stdin_closes(root: str) -> None:
    """The child of `start_ssh_server_process`: the server's fields as one JSON line, then serve."""
    with start_ssh_server(Path(root)) as server:
        print(json.dumps({field.name: str(getattr(server, field.name)) for field in fields(server)}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)


@contextmanager
def start_ssh_server_process(root: Path) -> Iterator[SSHServer]:
    """`start_ssh_server` in a child Python process, so that its CPU time is not this process's."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import servers; servers._serve_until_stdin_closes(sys.argv[1])"
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the SSH server process exited ({child.wait()}) before it was listening; see its output above"
            )
        found = json.loads(line)
        types = {"port": int, "host": str, "user": str}
        yield SSHServer(**{name: types.get(name, Path)(value) for name, value in found.items()})
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


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
    """One SSH server (asyncssh, in this process) for the session."""
    with start_ssh_server(tmp_path_factory.mktemp("ssh-server")) as server:
        yield server


@pytest.fixture(scope="session")
def http_server() -> Iterator[Callable[[str | os.PathLike], HTTPServer]]:
    """`http_server(directory)` starts a read-only server over it; all stop at session end."""
    with ExitStack() as stack:
        yield lambda directory: stack.enter_context(serve_http(directory))
