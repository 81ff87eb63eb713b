"""tools/uv.sh, the README's first command: uv from PATH as is, else a copy it bootstraps once.

Every test runs a copy of the script in a repository of its own with a PATH it controls: a
folder of fakes (uv, python3) before a folder of the few POSIX tools the script needs, so the
machine's own uv and python3 are never seen. No test needs the network: the bootstrap runs a
fake python3, or a real pip that installs a locally built stand-in wheel of uv 0.13.8.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV_VERSION = "0.13.8"
TOOLS = ("sh", "dirname", "mkdir", "rm", "cat", "grep", "sed", "mv", "cp", "ln", "chmod")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="tools/uv.sh is a POSIX shell script")

# Stands for python3: `-m pip --version`, `-m pip install ... --target DIR` (copies $FAKE_UV
# to DIR/bin/uv) and `-m venv DIR` (DIR/bin/python is this script again, with pip), each
# call logged to $CALLS. FAKE_PIP=0 and FAKE_VENV=0 make python3 lack pip and venv.
FAKE_PYTHON = """#!/bin/sh
echo "$0 $*" >>"$CALLS"
if [ "$1 $2" = "-m pip" ]; then
    case $0 in
        */venv/bin/python) ;;
        *) [ "$FAKE_PIP" = 1 ] || { echo "$0: No module named pip" >&2; exit 1; } ;;
    esac
    [ "$3" = --version ] && { echo "pip 0.0 (fake)"; exit 0; }
    target= prev=
    for arg in "$@"; do [ "$prev" = --target ] && target=$arg; prev=$arg; done
    mkdir -p "$target/bin" && cp "$FAKE_UV" "$target/bin/uv" && chmod +x "$target/bin/uv"
    exit
fi
if [ "$1 $2" = "-m venv" ]; then
    [ "$FAKE_VENV" = 1 ] || { echo "ensurepip is not available" >&2; exit 1; }
    mkdir -p "$3/bin" && ln -s "$0" "$3/bin/python"
    exit
fi
exit 1
"""


def fake_uv(marker: str, version: str, status: int) -> str:
    """A uv that prints `uv VERSION` for --version, else MARKER and its arguments, exiting STATUS."""
    return (
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo "uv {version}"; exit 0; fi\necho "{marker} $*"\nexit {status}\n'
    )


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture()
def box(tmp_path):
    """A repository with tools/uv.sh, an empty fakes folder and a folder of POSIX tools."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    shutil.copy2(REPO / "tools" / "uv.sh", repo / "tools" / "uv.sh")
    fakes, base = tmp_path / "fakes", tmp_path / "base"
    fakes.mkdir()
    base.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"no {tool} on PATH")
        (base / tool).symlink_to(found)
    calls = tmp_path / "calls.log"
    calls.touch()
    env = {
        "PATH": f"{fakes}:{base}",
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "FAKE_UV": str(write_script(tmp_path / "uv-from-pip", fake_uv("bootstrapped-uv", UV_VERSION, 4))),
        "FAKE_PIP": "1",
        "FAKE_VENV": "1",
    }

    class Box:
        def __init__(self):
            self.repo, self.fakes, self.calls, self.env = repo, fakes, calls, env
            self.uv = repo / ".tools" / f"uv-{UV_VERSION}" / "bin" / "uv"

        def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(base / "sh"), "tools/uv.sh", *args],
                cwd=repo,
                env={**self.env, **env},
                capture_output=True,
                text=True,
                timeout=120,
            )

    return Box()


def test_uv_on_path_is_used_as_is(box):
    write_script(box.fakes / "uv", fake_uv("uv-on-path", "0.1.0 (fake)", 3))
    write_script(box.fakes / "python3", FAKE_PYTHON)
    done = box.run("run", "pytest", "-x")
    assert done.returncode == 3, done.stderr  # uv's own exit code
    assert done.stdout == "uv-on-path run pytest -x\n"  # stdout is uv's alone
    assert f"using {box.fakes / 'uv'}: uv 0.1.0 (fake)" in done.stderr
    assert f"uv.lock was written by uv {UV_VERSION}" in done.stderr
    assert box.calls.read_text() == ""  # no python3, no bootstrap
    assert not (box.repo / ".tools").exists()


def test_a_uv_on_path_that_cannot_run_is_passed_over(box):
    """E.g. a pyenv shim whose Python has no uv: it fails --version, so the script bootstraps."""
    write_script(box.fakes / "uv", "#!/bin/sh\necho 'pyenv: uv: command not found' >&2\nexit 127\n")
    write_script(box.fakes / "python3", FAKE_PYTHON)
    done = box.run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"uv {UV_VERSION}\n"
    assert f"using {box.uv}" in done.stderr


def test_bootstrapped_copy_is_reused_on_the_second_call(box):
    write_script(box.fakes / "python3", FAKE_PYTHON)
    first = box.run("--version")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"uv {UV_VERSION}\n"
    assert "-m pip install" in box.calls.read_text()
    assert "--target" in box.calls.read_text()
    assert "bootstrapping" in first.stderr
    installed = box.uv.stat().st_mtime_ns
    calls = box.calls.read_text()
    assert sorted(p.name for p in (box.repo / ".tools").iterdir()) == ["bootstrap.log", f"uv-{UV_VERSION}"]

    second = box.run("sync", "--frozen")
    assert second.returncode == 4, second.stderr  # the bootstrapped uv's exit code
    assert second.stdout == "bootstrapped-uv sync --frozen\n"
    assert second.stderr == f"tools/uv.sh: using {box.uv}: uv {UV_VERSION}\n"
    assert box.calls.read_text() == calls  # python3 not run again: nothing installed
    assert box.uv.stat().st_mtime_ns == installed


def test_without_pip_the_bootstrap_uses_a_venv(box):
    write_script(box.fakes / "python3", FAKE_PYTHON)
    done = box.run("--version", FAKE_PIP="0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"uv {UV_VERSION}\n"
    assert "-m venv" in box.calls.read_text()
    assert "venv/bin/python -m pip install" in box.calls.read_text()
    assert sorted(p.name for p in (box.repo / ".tools").iterdir()) == ["bootstrap.log", f"uv-{UV_VERSION}"]  # venv gone


def test_error_names_what_to_install_when_python3_has_neither_pip_nor_venv(box):
    write_script(box.fakes / "python3", FAKE_PYTHON)
    done = box.run("--version", FAKE_PIP="0", FAKE_VENV="0")
    assert done.returncode == 127
    assert done.stdout == ""
    assert "error: no uv on PATH, and python3 cannot install uv 0.13.8" in done.stderr
    assert "-m pip: " in done.stderr and "No module named pip" in done.stderr
    assert "-m venv: ensurepip is not available" in done.stderr
    assert "apt-get install python3-venv" in done.stderr
    assert f"pipx install uv=={UV_VERSION}" in done.stderr
    assert not box.uv.parent.parent.exists()


def test_error_when_there_is_no_python3(box):
    done = box.run("--version")
    assert done.returncode == 127
    assert "python3: not on PATH" in done.stderr
    assert "apt-get install python3-venv" in done.stderr


def test_error_when_python3_fails_outright(box):
    write_script(box.fakes / "python3", "#!/bin/sh\necho 'python3: broken' >&2\nexit 1\n")
    done = box.run("--version")
    assert done.returncode == 127
    assert "python3: broken" in done.stderr
    assert "apt-get install python3-venv" in done.stderr
    assert not box.uv.exists()


def has_pip(python: str) -> bool:
    try:
        done = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# The interpreter this project's .venv (which has no pip) was made from, and the system one:
# PEP 668 "externally managed" on Debian 12+ and Ubuntu 23.04+, where --target is still allowed.
BASE_PYTHON = getattr(sys, "_base_executable", "") or sys.executable
PYTHONS = {"base": BASE_PYTHON, "system": "/usr/bin/python3"}


def stand_in_uv_wheel(folder: Path) -> Path:
    """uv-0.13.8-py3-none-any.whl whose bin/uv is a shell script: pip installs it offline."""
    folder.mkdir()
    wheel = folder / f"uv-{UV_VERSION}-py3-none-any.whl"
    info = f"uv-{UV_VERSION}.dist-info"
    files = {
        "uv/__init__.py": "",
        f"uv-{UV_VERSION}.data/scripts/uv": fake_uv("wheel-uv", f"{UV_VERSION} (stand-in wheel)", 0),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: uv\nVersion: {UV_VERSION}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in {**files, f"{info}/RECORD": record}.items():
            entry = zipfile.ZipInfo(name)
            entry.external_attr = (stat.S_IFREG | 0o755) << 16
            archive.writestr(entry, text)
    return wheel


@pytest.mark.parametrize("which", PYTHONS)
def test_real_pip_target_bootstrap_offline_then_reuse(box, tmp_path, which):
    python = PYTHONS[which]
    if which == "system" and os.path.realpath(python) == os.path.realpath(BASE_PYTHON):
        pytest.skip("the system python3 is the base one")
    if not has_pip(python):
        pytest.skip(f"{python} has no pip")
    (box.fakes / "python3").symlink_to(python)
    wheels = stand_in_uv_wheel(tmp_path / "wheels").parent
    pip_env = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    first = box.run("--version", **pip_env)
    assert first.returncode == 0, first.stderr + (box.repo / ".tools" / "bootstrap.log").read_text()
    assert first.stdout == f"uv {UV_VERSION} (stand-in wheel)\n"
    assert "-m pip install --target" in first.stderr
    installed = box.uv.stat().st_mtime_ns

    second = box.run("pip", "list", **pip_env)
    assert second.returncode == 0
    assert second.stdout == "wheel-uv pip list\n"
    assert "bootstrapping" not in second.stderr
    assert box.uv.stat().st_mtime_ns == installed
