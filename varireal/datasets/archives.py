"""Safe unpacking of dataset archives.

Archives come from the internet or from users, so no member may land outside the target:
tar members pass tarfile's "data" filter (no absolute paths, no "..", no links or devices
that point outside); zip members are checked by hand, since zipfile has no such filter.
A target folder appears only once fully unpacked, so a half-unpacked one is never reused.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


class UnsafeArchiveError(ValueError):
    """An archive member that would be written outside the extraction folder."""


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, dest: Path) -> Path:
    """Unpack `archive` into `dest`, or reuse `dest` when an earlier run finished it."""
    if dest.is_dir():
        return dest
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
    staging.mkdir(parents=True)
    try:
        _unpack(archive, staging)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"{archive}: damaged archive ({err}); delete it to download it again") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, dest)
    return dest


def _unpack(archive: Path, target: Path) -> None:
    if tarfile.is_tarfile(archive):
        _extract_tar(archive, target)
    elif zipfile.is_zipfile(archive):
        _extract_zip(archive, target)
    else:
        raise ValueError(f"{archive}: not a tar or zip archive (expected one of {', '.join(ARCHIVE_SUFFIXES)})")


def _extract_tar(archive: Path, target: Path) -> None:
    # "data" also strips a leading '/' (the member lands inside the target) and drops
    # set-uid bits; members that would still leave the target raise FilterError.
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except tarfile.FilterError as err:
        raise UnsafeArchiveError(f"{archive}: refusing member {err.tarinfo.name!r}: {err}") from err


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for member in members:  # every member checked before any is written
            _check_zip_member(archive, member)
        for member in members:
            bundle.extract(member, target)


def _check_zip_member(archive: Path, member: zipfile.ZipInfo) -> None:
    name = member.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise UnsafeArchiveError(f"{archive}: refusing member {member.filename!r}: path leaves the extraction folder")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise UnsafeArchiveError(
            f"{archive}: refusing member {member.filename!r}: links are not allowed in zip archives"
        )
