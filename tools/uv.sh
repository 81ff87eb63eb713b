#!/bin/sh
# Runs uv with this script's arguments, e.g. from the repository root:
#   sh tools/uv.sh sync --frozen && sh tools/uv.sh run pytest
# Which uv:
#   1. a `uv` on PATH, as is (named on stderr with its version);
#   2. else uv 0.13.8 (the version that wrote uv.lock) bootstrapped by an earlier call into
#      the git-ignored .tools/uv-0.13.8/;
#   3. else it bootstraps that copy now, never system-wide, so PEP 668 systems (Debian 12,
#      Ubuntu 23.04+), which refuse `python3 -m pip install`, work too: first
#      `python3 -m pip install --target` (pip's externally-managed check does not apply to
#      --target), else pip inside a throw-away `python3 -m venv` (python3 without pip).
# Exits with uv's exit code, or 127 (with what to install) if no uv can be had.
set -eu

UV_VERSION=0.13.8

say() { printf 'tools/uv.sh: %s\n' "$*" >&2; }

# 1. uv on PATH, as is (a pyenv shim without uv behind it fails --version and is skipped).
if uv=$(command -v uv 2>/dev/null) && version=$("$uv" --version 2>/dev/null); then
    say "using $uv: $version"
    case $version in
        "uv $UV_VERSION" | "uv $UV_VERSION "*) ;;
        *) say "note: uv.lock was written by uv $UV_VERSION (take this uv off PATH to use that one)" ;;
    esac
    exec "$uv" "$@"
fi

root=$(cd "$(dirname "$0")/.." && pwd -P)
tools=$root/.tools
dest=$tools/uv-$UV_VERSION
uv=$dest/bin/uv

# 2. the copy an earlier call bootstrapped (only complete copies are ever moved there).
if [ -x "$uv" ] && version=$("$uv" --version 2>/dev/null); then
    say "using $uv: $version"
    exec "$uv" "$@"
fi

# 3. bootstrap into a temporary folder, check that it runs, then move it into place.
tmp=$tools/tmp.$$
log=$tools/bootstrap.log
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$tmp"
: >"$log"
tried=
ok=
pip_ran=

# pip_target PYTHON: install uv==$UV_VERSION into $tmp/uv with PYTHON's pip, check it runs.
pip_target() {
    pip_ran=1
    rm -rf "$tmp/uv"
    PIP_USER=0 PIP_REQUIRE_VIRTUALENV=0 PIP_ROOT_USER_ACTION=ignore \
        "$1" -m pip install --disable-pip-version-check --no-warn-script-location \
        --progress-bar off --only-binary=:all: --target "$tmp/uv" "uv==$UV_VERSION" &&
        "$tmp/uv/bin/uv" --version
}
# attempt WHAT COMMAND...: run COMMAND, its output appended to $log; if it fails, add WHAT
# and the gist of its output (its last non-blank line) to $tried.
attempt() {
    what=$1
    shift
    status=0
    "$@" >"$tmp/out" 2>&1 || status=$?
    cat "$tmp/out" >>"$log"
    [ "$status" -eq 0 ] && return 0
    if grep -q 'ensurepip is not' "$tmp/out"; then
        gist='ensurepip is not available'
    else
        # shellcheck disable=SC2016 # sed script, not shell
        gist=$(sed -n '/[^[:space:]]/h; ${x;s/^[[:space:]]*//;p;}' "$tmp/out")
    fi
    tried="$tried
  $what: $gist"
    return 1
}

if ! python=$(command -v python3 2>/dev/null); then
    python=
    tried="
  python3: not on PATH"
elif attempt "$python -m pip" "$python" -m pip --version; then
    say "bootstrapping uv $UV_VERSION into $dest with $python -m pip install --target"
    if attempt "$python -m pip install --target" pip_target "$python"; then ok=1; fi
fi
if [ -z "$ok" ] && [ -n "$python" ]; then
    say "bootstrapping uv $UV_VERSION into $dest with pip in a temporary $python -m venv"
    if attempt "$python -m venv" "$python" -m venv "$tmp/venv" &&
        attempt "pip install --target in that venv" pip_target "$tmp/venv/bin/python"; then
        ok=1
    fi
fi
if [ -z "$ok" ]; then
    if [ -n "$pip_ran" ]; then
        fix="Let pip reach an index with uv $UV_VERSION (PyPI, or set one in pip's config)"
    else
        fix="Install python3-venv (Debian, Ubuntu: apt-get install python3-venv)"
    fi
    say "error: no uv on PATH, and python3 cannot install uv $UV_VERSION here:$tried
  (full output in $log)
$fix, or put uv on PATH
(pipx install uv==$UV_VERSION, or https://docs.astral.sh/uv/getting-started/installation/),
then run this again."
    exit 127
fi

# A concurrent call may have finished first: keep its copy if it works.
if ! "$uv" --version >/dev/null 2>&1; then
    rm -rf "$dest"
    mv "$tmp/uv" "$dest"
fi
rm -rf "$tmp"
version=$("$uv" --version)
say "using $uv: $version"
exec "$uv" "$@"
