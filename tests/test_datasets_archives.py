"""Archives unpack only inside their target folder, and only complete folders are reused."""

import io
import tarfile
import zipfile

import pytest
from datasets_fixtures import write_tar, write_zip

from varireal.datasets.archives import UnsafeArchiveError, extract


def tar_with(path, *members: tarfile.TarInfo):
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def file_member(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def link_member(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_tar_and_zip_unpack_into_the_target(tmp_path):
    members = {"top/a.txt": b"a", "top/sub/b.txt": b"b"}
    for archive in (write_tar(tmp_path / "x.tar.gz", members), write_zip(tmp_path / "x.zip", members)):
        dest = extract(archive, tmp_path / f"out-{archive.name}")
        assert (dest / "top/sub/b.txt").read_bytes() == b"b"


@pytest.mark.parametrize(
    "member",
    [
        file_member("../escaped.txt"),
        link_member("link", "../../outside"),
        link_member("link", "/etc/passwd"),
        link_member("hard", "../outside", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "symlink-up", "symlink-absolute", "hardlink-up"],
)
def test_tar_members_leaving_the_target_are_refused(tmp_path, member):
    archive = tar_with(tmp_path / "evil.tar.gz", file_member("ok.txt"), member)
    with pytest.raises(UnsafeArchiveError) as caught:
        extract(archive, tmp_path / "out" / "evil")
    assert "evil.tar.gz" in str(caught.value) and member.name in str(caught.value)
    assert not (tmp_path / "escaped.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # neither the target nor a half-unpacked folder


def test_tar_absolute_paths_land_inside_the_target(tmp_path):
    archive = tar_with(tmp_path / "abs.tar.gz", file_member(f"{tmp_path}/absolute.txt"))
    dest = extract(archive, tmp_path / "out" / "abs")
    assert not (tmp_path / "absolute.txt").exists()
    assert (dest / tmp_path.relative_to("/") / "absolute.txt").is_file()


@pytest.mark.parametrize("name", ["../escaped.txt", "/abs.txt", "a/../../escaped.txt", "C:/windows.txt"])
def test_zip_members_leaving_the_target_are_refused(tmp_path, name):
    archive = write_zip(tmp_path / "evil.zip", {"ok.txt": b"ok", name: b"bad"})
    with pytest.raises(UnsafeArchiveError, match="evil.zip.*leaves the extraction folder"):
        extract(archive, tmp_path / "out" / "evil")
    assert list((tmp_path / "out").iterdir()) == []


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16  # a symlink entry, as `zip --symlinks` writes it
        bundle.writestr(info, "../../outside")
    with pytest.raises(UnsafeArchiveError, match="links are not allowed"):
        extract(archive, tmp_path / "out" / "link")


def test_a_finished_folder_is_reused_and_a_half_unpacked_one_is_redone(tmp_path):
    archive = write_tar(tmp_path / "x.tar.gz", {"a.txt": b"a"})
    (tmp_path / "out" / ".x.partial").mkdir(parents=True)  # a killed run's leftovers
    (tmp_path / "out" / ".x.partial" / "junk").write_bytes(b"junk")
    dest = extract(archive, tmp_path / "out" / "x")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    assert not (tmp_path / "out" / ".x.partial").exists()
    (dest / "a.txt").write_bytes(b"kept")
    assert (extract(archive, dest) / "a.txt").read_bytes() == b"kept"


def test_a_damaged_or_foreign_file_is_named(tmp_path):
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(write_tar(tmp_path / "ok.tar.gz", {"a.txt": b"a" * 5000}).read_bytes()[:60])
    text = tmp_path / "notes.tar.gz"
    text.write_bytes(b"this is not an archive")
    for archive in (damaged, text):
        with pytest.raises(ValueError, match=archive.name):
            extract(archive, tmp_path / "out" / archive.name)
