"""Resumable, verified HTTP downloads.

Bytes go to `<file>.part`; an interrupted transfer (killed process, dropped connection)
resumes from there with an HTTP Range request. Only a file whose checksum matches is
renamed to its final name, so a file under its final name is always complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "varireal-fetch/0.1 (+https://dvc.org)"


class ChecksumError(ValueError):
    """A downloaded file whose checksum differs from the one pinned in params.yaml."""


class DownloadError(OSError):
    """A URL that could not be fetched after every retry."""


@dataclass(frozen=True)
class Downloaded:
    url: str
    path: Path
    size: int
    sha256: str
    expected: str | None


def file_digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    """Digests of one file in a single read (the archives are gigabytes)."""
    hashers = {name: hashlib.new(name) for name in algorithms | {"sha256"}}
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def split_checksum(checksum: str | None) -> tuple[str, str] | None:
    """'sha256:<hex>' -> ('sha256', '<hex>'); None stays None."""
    if checksum is None:
        return None
    algorithm, expected = checksum.split(":", 1)
    return algorithm, expected


def download(
    url: str, dest: Path, checksum: str | None, timeout_s: float, retries: int, retry_wait_s: float
) -> Downloaded:
    """Fetch `url` to `dest` (reusing a valid existing file) and verify it against `checksum`."""
    pinned = split_checksum(checksum)
    wanted = {pinned[0]} if pinned else set()
    if dest.exists():
        sums = file_digests(dest, wanted)
        if pinned is None or sums[pinned[0]] == pinned[1]:
            log.info("reusing %s", dest)
            return Downloaded(url, dest, dest.stat().st_size, sums["sha256"], checksum)
        dest.unlink()  # present but wrong: a different release or a damaged copy
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout_s)
            break
        except (OSError, http.client.HTTPException) as err:
            if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
            if attempt == retries:
                raise DownloadError(f"{url}: failed after {retries + 1} attempt(s): {err}") from err
            log.warning("%s: %s; retrying from byte %d", url, err, part.stat().st_size if part.exists() else 0)
            time.sleep(retry_wait_s * 2**attempt)
    sums = file_digests(part, wanted)
    if pinned is not None and sums[pinned[0]] != pinned[1]:
        part.unlink()  # a wrong file must be neither resumed onto nor reused
        raise ChecksumError(
            f"{url}: {pinned[0]} mismatch: expected {pinned[1]}, got {sums[pinned[0]]}; the download was deleted"
        )
    os.replace(part, dest)
    log.info("downloaded %s (sha256 %s)", dest, sums["sha256"])
    return Downloaded(url, dest, dest.stat().st_size, sums["sha256"], checksum)


def _transfer(url: str, part: Path, timeout_s: float) -> None:
    """Append the missing bytes of `url` to `part`; raise on any short or failed transfer."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, part, offset, timeout_s)
    if response is None:
        return
    with response:
        resumed = response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if offset and not resumed:
            offset = 0  # the server ignored the Range header: start over rather than append a duplicate
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        received = _append(response, part, offset, expected)
    if expected is not None and received < expected:
        raise http.client.IncompleteRead(b"", expected - received)


def _open(url: str, part: Path, offset: int, timeout_s: float) -> http.client.HTTPResponse | None:
    """The response for the bytes from `offset` on, or None when the .part already holds them all."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not offset:
            raise
        if _total_size(err.headers) == offset:
            return None
        part.unlink(missing_ok=True)  # a .part longer than the file: start over on the retry
        raise OSError(f"HTTP 416 for a .part of {offset} bytes; restarting") from err


def _append(response: http.client.HTTPResponse, part: Path, offset: int, expected: int | None) -> int:
    """Write the body after `offset` bytes of `part` (truncating when 0); return the bytes received."""
    received = 0
    total = offset + expected if expected is not None else None
    progress = tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"), disable=None
    )
    with open(part, "ab" if offset else "wb") as out, progress:
        while block := response.read(CHUNK):
            out.write(block)
            received += len(block)
            progress.update(len(block))
    return received


def _total_size(headers: Message) -> int | None:
    """The N of a 'Content-Range: bytes */N' header (sent with a 416), or None."""
    total = (headers.get("Content-Range") or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None
