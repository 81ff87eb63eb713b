"""What a model file's bytes hash to, and the memo that spares reading unchanged files again.

Every stage checks the weights it loads against data/models/lock.json (varireal.models.weights);
this module reads the bytes: sha256 per file, a memo keyed by each file's stat in the varireal
cache, and the per-file comparison with the lock that errors and `varireal verify` report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from varireal.io import write_json

CACHE_ENV = "VARIREAL_CACHE"
MARKER = "varireal_model.json"  # our seal in a model directory: not a model file
MEMO_NAME = "sha256-memo.json"  # in cache_root(): {stat of a file: the sha256 read from it}
MEMO_FORMAT = 1
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cache_root() -> Path:
    """The varireal cache of this machine (tiny builds, views of hub snapshots)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "varireal"


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_files(model_dir: Path, patterns: list[str] | None = None) -> list[Path]:
    """The model's regular files (symlinks followed), sorted, without our marker; only `patterns` if given."""
    from huggingface_hub.utils import filter_repo_objects

    paths = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and p.relative_to(model_dir).parts[0] != MARKER]
    if patterns:
        paths = list(
            filter_repo_objects(paths, allow_patterns=patterns, key=lambda p: p.relative_to(model_dir).as_posix())
        )
    return paths


def on_disk(model_dir: Path, patterns: list[str] | None = None) -> dict[str, Path]:
    """{relative posix path: file} of the model's files (only `patterns` if given)."""
    return {p.relative_to(model_dir).as_posix(): p for p in model_files(model_dir, patterns)}


def file_hashes(model_dir: str | Path, patterns: list[str] | None = None, trust_memo: bool = True) -> dict[str, str]:
    """{relative posix path: sha256 of its bytes} of the model's files, sorted by path."""
    return hash_files(on_disk(Path(model_dir), patterns), trust_memo)


# --- the sha256 memo ------------------------------------------------------------------------------
# Stages verify every weight file before loading it; reading ~60 GB each time would cost minutes.
# The memo maps the stat of a resolved file, (device, inode, size, mtime, ctime), to the sha256
# read from it. Writing a file changes its mtime and ctime, replacing it changes the inode, so
# such a file is read again. ctime is in the key because no call can set it back: an overwrite
# that restores the old mtime with os.utime still changes it. What the memo cannot see is bytes
# that change under unchanged metadata (a failing disk, a write to the raw device, a file system
# without a real ctime): `varireal verify` reads every byte. The memo guards against accidents,
# not an attacker who can write the cache (they could write the memo too).


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _read_memo() -> dict[str, dict[str, str]]:
    """The memo's entries; a missing, damaged or foreign memo is empty (every file is read again)."""
    try:
        data = json.loads((cache_root() / MEMO_NAME).read_text())
        entries = data["files"] if data.get("format") == MEMO_FORMAT else {}
        return {
            key: entry
            for key, entry in entries.items()
            if isinstance(entry, dict)
            and SHA256.fullmatch(str(entry.get("sha256")))
            and isinstance(entry.get("path"), str)
        }
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def _still_there(key: str, path: str) -> bool:
    try:
        return _stat_key(Path(path)) == key
    except OSError:
        return False


def _update_memo(learned: Mapping[str, dict[str, str]]) -> None:
    """Add entries, drop those of files gone or changed since, and replace the memo atomically.

    Read again just before writing, so entries another process added meanwhile are kept; a lost
    race only costs a re-read later. A memo that cannot be written (read-only or full cache) only
    costs the same: it never stops a stage.
    """
    entries = {**_read_memo(), **learned}
    live = {key: entry for key, entry in entries.items() if _still_there(key, entry["path"])}
    try:
        write_json(cache_root() / MEMO_NAME, {"format": MEMO_FORMAT, "files": live})
    except OSError:
        pass


def hash_files(paths: Mapping[str, Path], trust_memo: bool = True) -> dict[str, str]:
    """{name: sha256 of the file's bytes}, sorted by name; files whose stat the memo knows are not
    read again unless `trust_memo` is False. Every hash read here is added to the memo."""
    memo, learned, out = _read_memo(), {}, {}
    for name, path in sorted(paths.items()):
        target = path.resolve()
        key = _stat_key(target)
        known = memo.get(key)
        if trust_memo and known is not None:
            out[name] = known["sha256"]
            if known["path"] != str(target):  # a build renamed into place: same file, new path
                learned[key] = {"sha256": known["sha256"], "path": str(target)}
            continue
        out[name] = sha256_file(target)
        if _stat_key(target) == key:  # not written to while read: the hash is of these bytes
            learned[key] = {"sha256": out[name], "path": str(target)}
    if learned:
        _update_memo(learned)
    return out


# --- checking a directory against the lock --------------------------------------------------------


@dataclass(frozen=True)
class FileCheck:
    """One file of a role: `expected` None = not in the lock (extra); `found` None = not on disk (missing)."""

    name: str
    expected: str | None
    found: str | None

    @property
    def status(self) -> str:
        if self.found is None:
            return "missing"
        if self.expected is None:
            return "extra"
        return "ok" if self.found == self.expected else "mismatch"

    def describe(self) -> str:
        if self.status == "missing":
            return f"{self.name}: missing (the lock expects sha256 {self.expected})"
        if self.status == "extra":
            return f"{self.name}: not in the lock (sha256 {self.found}), yet it would be loaded"
        return f"{self.name}: expected sha256 {self.expected}, found {self.found}"


def compare(found: Mapping[str, str], locked: Mapping[str, str]) -> list[FileCheck]:
    """Every file of either side, by name."""
    return [FileCheck(name, locked.get(name), found.get(name)) for name in sorted(set(found) | set(locked))]


def check_files(present: Mapping[str, Path], locked: Mapping[str, str], trust_memo: bool = True) -> list[FileCheck]:
    return compare(hash_files(present, trust_memo), locked)


def wrong_files(checks: list[FileCheck]) -> list[FileCheck]:
    return [check for check in checks if check.status != "ok"]
