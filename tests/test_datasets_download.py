"""Downloads resume after an interruption, are verified, and are reused once complete."""

import hashlib

import pytest
from datasets_fixtures import serve

from varireal.datasets.download import ChecksumError, DownloadError, download

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, more than one read chunk
SHA256 = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()


def fetch(url, dest, checksum=SHA256, retries=2):
    return download(url, dest, checksum, timeout_s=10, retries=retries, retry_wait_s=0)


def test_downloads_verifies_and_records_the_sha256(tmp_path):
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        got = fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == PAYLOAD
    assert got.sha256 == SHA256.removeprefix("sha256:") and got.size == len(PAYLOAD)
    assert not (tmp_path / "a.tar.gz.part").exists()


def test_md5_checksums_are_accepted(tmp_path):
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz", checksum="md5:" + hashlib.md5(PAYLOAD).hexdigest())
    assert (tmp_path / "a.tar.gz").read_bytes() == PAYLOAD


def test_a_valid_file_is_reused_without_a_request(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(PAYLOAD)
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz")
    assert server.requests == []


def test_a_dropped_connection_is_resumed_with_a_range_request(tmp_path):
    with serve({"/a.tar.gz": PAYLOAD}, drop_first={"/a.tar.gz"}) as server:
        fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == PAYLOAD
    (first_path, first_range), (_, second_range) = server.requests
    assert first_range is None
    assert second_range is not None and int(second_range.removeprefix("bytes=").rstrip("-")) > 0


def test_a_part_file_left_by_a_killed_run_is_continued(tmp_path):
    (tmp_path / "a.tar.gz.part").write_bytes(PAYLOAD[:300_000])
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz")
    assert server.requests == [("/a.tar.gz", "bytes=300000-")]
    assert (tmp_path / "a.tar.gz").read_bytes() == PAYLOAD


def test_a_complete_part_file_is_finished_without_sending_bytes_again(tmp_path):
    (tmp_path / "a.tar.gz.part").write_bytes(PAYLOAD)
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == PAYLOAD


def test_checksum_mismatch_names_url_expected_and_actual_and_deletes_the_file(tmp_path):
    wrong = "sha256:" + "0" * 64
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        with pytest.raises(ChecksumError) as caught:
            fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz", checksum=wrong)
    message = str(caught.value)
    assert f"{server.url}/a.tar.gz" in message
    assert "0" * 64 in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_a_stale_file_with_the_wrong_checksum_is_downloaded_again(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"an older release")
    with serve({"/a.tar.gz": PAYLOAD}) as server:
        fetch(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == PAYLOAD


def test_a_missing_url_fails_at_once_naming_it(tmp_path):
    with serve({}) as server:
        with pytest.raises(DownloadError, match=r"/gone\.tar\.gz: HTTP 404"):
            fetch(f"{server.url}/gone.tar.gz", tmp_path / "gone.tar.gz")
    assert len(server.requests) == 1


def test_an_unreachable_host_fails_after_the_retries(tmp_path):
    with serve({}) as server:
        dead_url = f"{server.url}/a.tar.gz"
    with pytest.raises(DownloadError, match="after 2 attempt"):
        fetch(dead_url, tmp_path / "a.tar.gz", retries=1)
