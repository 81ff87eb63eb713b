"""Oxford-IIIT Pet from its two official archives and the reference's split file, served by a local HTTP server."""

import hashlib
import json
import re
from typing import get_args

import pandas as pd
import pytest
from datasets_fixtures import MIN_SIDE, PETS_VAL, pets_archives, pets_split_rows, serve, split_csv_bytes

from varireal.datasets.download import ChecksumError
from varireal.datasets.fetch import fetch_dataset
from varireal.io import read_table
from varireal.safe_paths import UnsafePathError
from varireal.settings.fetch import PETS_SPLIT_URL, FetchParams, SourceParams
from varireal.vocabulary import Protocol


def sha256(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def params_for(source: SourceParams) -> FetchParams:
    return FetchParams(min_side=MIN_SIDE, retry_wait_s=0, retries=1, sources={"oxford_pets": source})


@pytest.fixture
def pets_site(tmp_path):
    """The two archives and the split file on a local server, and params that pin their checksums."""
    archives, expected = pets_archives(tmp_path / "site")
    files = {f"/pets/{name}": path.read_bytes() for name, path in archives.items()}
    with serve(files) as server:
        urls = [f"{server.url}/pets/{name}" for name in archives]
        yield server, params_for(SourceParams(urls=urls, checksums=[sha256(p) for p in archives.values()])), expected


def tree_bytes(folder):
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_manifest_follows_the_official_lists(tmp_path, pets_site):
    _server, params, expected = pets_site
    out = tmp_path / "real"
    manifest = fetch_dataset("oxford_pets", out, params, tmp_path / "downloads")

    assert list(manifest.columns) == ["id", "path", "class_name", "class_index", "split", "source"]
    assert manifest.groupby("split").size().to_dict() == expected.counts
    assert manifest.drop_duplicates("class_index")["class_name"].tolist() == expected.class_names
    assert manifest["id"].is_unique
    assert manifest.equals(manifest.sort_values(["split", "class_index", "id"], key=split_rank).reset_index(drop=True))
    row = manifest.set_index("id").loc["american_bulldog_3"]
    assert (row.class_name, row.class_index) == ("american bulldog", 1)
    assert row.path == f"{row.split}/american_bulldog/american_bulldog_3.jpg"
    assert row.source == "images.tar.gz:images/american_bulldog_3.jpg"
    assert set(manifest.loc[manifest["id"].str.endswith(("_7", "_8")), "split"]) == {"test"}
    for path, source_id in zip(manifest["path"], manifest["id"]):
        assert (out / path).is_file() and path.endswith(f"/{source_id}.jpg")
    pd.testing.assert_frame_equal(read_table(out / "manifest.csv"), manifest)


def split_rank(column):
    return column.map({"train": 0, "val": 1, "test": 2}) if column.name == "split" else column


def test_unusable_images_are_listed_with_reasons_and_kept_out(tmp_path, pets_site):
    _server, params, expected = pets_site
    manifest = fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    rejected = read_table(tmp_path / "real" / "rejected.csv")
    assert list(rejected.columns) == ["source", "reason"]
    reasons = {source.split(":", 1)[1]: reason for source, reason in zip(rejected["source"], rejected["reason"])}
    assert {member: reason.split(":")[0] for member, reason in reasons.items()} == expected.rejected
    assert not set(manifest["id"]) & {"Abyssinian_1", "Abyssinian_5", "great_pyrenees_8"}
    # CMYK, RGBA-in-PNG, grayscale and palette files are kept byte for byte.
    kept = manifest.set_index("id")
    for image_id in ("Abyssinian_2", "Abyssinian_3", "Abyssinian_4", "Abyssinian_6"):
        original = tmp_path / "downloads" / "oxford_pets" / "unpacked"
        [source] = original.glob(f"images.tar.gz-*/images/{image_id}.jpg")
        assert (tmp_path / "real" / kept.loc[image_id, "path"]).read_bytes() == source.read_bytes()


def test_classes_and_sources_are_recorded(tmp_path, pets_site):
    _server, params, _expected = pets_site
    fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    classes = read_table(tmp_path / "real" / "classes.csv")
    assert classes.to_dict("list") == {
        "class_index": [0, 1, 2],
        "class_name": ["Abyssinian", "american bulldog", "great pyrenees"],
        "folder": ["Abyssinian", "american_bulldog", "great_pyrenees"],
    }
    inputs = json.loads((tmp_path / "real" / "sources.json").read_text())["inputs"]
    assert [entry["file"] for entry in inputs] == ["images.tar.gz", "annotations.tar.gz", "split_coop.csv"]
    assert all(entry["pinned"] == "sha256:" + entry["sha256"] for entry in inputs)
    assert inputs[2]["url"].endswith("/pets/split_coop.csv")
    assert inputs[2]["sha256"] == hashlib.sha256(split_csv_bytes(pets_split_rows())).hexdigest()


def test_two_runs_give_identical_bytes_and_a_rerun_repairs_the_folder(tmp_path, pets_site):
    server, params, _expected = pets_site
    fetch_dataset("oxford_pets", tmp_path / "a", params, tmp_path / "downloads_a")
    fetch_dataset("oxford_pets", tmp_path / "b", params, tmp_path / "downloads_b")
    first = tree_bytes(tmp_path / "a")
    assert first == tree_bytes(tmp_path / "b")

    # A killed run's leftovers: a temp file, a stale image, a half-written image.
    (tmp_path / "a" / ".tmp-manifest.csv.x").write_text("partial")
    (tmp_path / "a" / "train" / "old_class").mkdir()
    (tmp_path / "a" / "train" / "old_class" / "stale.jpg").write_bytes(b"stale")
    some_image = next(path for path in first if path.startswith("test/"))
    (tmp_path / "a" / some_image).write_bytes(b"half")
    requests_before = len(server.requests)
    fetch_dataset("oxford_pets", tmp_path / "a", params, tmp_path / "downloads_a")
    assert tree_bytes(tmp_path / "a") == first
    assert len(server.requests) == requests_before  # the verified downloads were reused


def test_a_local_archive_folder_wins_over_the_urls(tmp_path):
    archives, expected = pets_archives(tmp_path / "mine")
    params = params_for(
        SourceParams(urls=["http://127.0.0.1:9/unreachable.tar.gz"], checksums=[None], archive=str(tmp_path / "mine"))
    )
    manifest = fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    assert manifest.groupby("split").size().to_dict() == expected.counts
    assert sorted(manifest.loc[manifest["split"] == "val", "id"]) == PETS_VAL
    inputs = json.loads((tmp_path / "real" / "sources.json").read_text())["inputs"]
    assert [entry.get("archive", entry.get("folder")) for entry in inputs] == [
        str(tmp_path / "mine"),
        str(archives["annotations.tar.gz"]),
        str(archives["images.tar.gz"]),
        str(archives["split_coop.csv"]),
    ]
    assert inputs[3]["sha256"] == sha256(archives["split_coop.csv"]).removeprefix(
        "sha256:"
    )  # the user's split file, on record


def test_a_wrong_checksum_stops_the_fetch_naming_the_url(tmp_path, pets_site):
    server, params, _expected = pets_site
    source = params.sources["oxford_pets"]
    bad = params_for(
        SourceParams(urls=source.urls, checksums=[source.checksums[0], "sha256:" + "f" * 64, source.checksums[2]])
    )
    with pytest.raises(
        ValueError,
        match=rf"{server.url}/pets/annotations.tar.gz: sha256 mismatch: expected f{{64}}, got [0-9a-f]{{64}}",
    ):
        fetch_dataset("oxford_pets", tmp_path / "real", bad, tmp_path / "downloads")
    assert not (tmp_path / "real").exists()
    assert not (tmp_path / "downloads" / "oxford_pets" / "annotations.tar.gz").exists()

    bad = params_for(SourceParams(urls=source.urls, checksums=[*source.checksums[:2], "sha256:" + "e" * 64]))
    with pytest.raises(ValueError, match=rf"{server.url}/pets/split_coop.csv: sha256 mismatch: expected e{{64}}"):
        fetch_dataset("oxford_pets", tmp_path / "real", bad, tmp_path / "downloads")
    assert not (tmp_path / "real").exists()
    assert not list((tmp_path / "downloads" / "oxford_pets").glob("split_coop.csv*"))  # neither kept nor resumable


def test_the_split_file_decides_train_val_and_test_in_every_protocol(tmp_path, pets_site):
    _server, params, expected = pets_site
    manifests = {
        protocol: fetch_dataset("oxford_pets", tmp_path / protocol, params, tmp_path / "downloads", protocol=protocol)
        for protocol in get_args(Protocol)
    }
    rejected = {"Abyssinian_1", "Abyssinian_5", "great_pyrenees_8"}
    usable = {
        split: {
            name.rsplit("/", 1)[1].removesuffix(".jpg") for row_split, name in pets_split_rows() if row_split == split
        }
        - rejected
        for split in ("train", "val", "test")
    }
    for protocol, manifest in manifests.items():
        assert {split: set(group["id"]) for split, group in manifest.groupby("split")} == usable, protocol
        assert sorted(manifest.loc[manifest["split"] == "val", "id"]) == PETS_VAL, protocol
        assert manifest.groupby("split").size().to_dict() == expected.counts
        pd.testing.assert_frame_equal(manifest, manifests["heldout_val"])


def test_the_split_file_is_downloaded_resumably_beside_the_archives_and_never_copied_out(tmp_path):
    archives, _expected = pets_archives(tmp_path / "site")
    files = {f"/pets/{name}": path.read_bytes() for name, path in archives.items()}
    with serve(files, drop_first={"/pets/split_coop.csv"}) as server:
        urls = [f"{server.url}/pets/{name}" for name in archives]
        params = params_for(SourceParams(urls=urls, checksums=[sha256(p) for p in archives.values()]))
        fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    assert (tmp_path / "downloads" / "oxford_pets" / "split_coop.csv").read_bytes() == files["/pets/split_coop.csv"]
    ranges = [header for path, header in server.requests if path == "/pets/split_coop.csv"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"  # resumed, not restarted
    assert not list((tmp_path / "real").rglob("split_coop*"))  # it decides the manifest; it is not an output


def test_the_default_sources_pin_the_reference_split_file_at_its_commit():
    source = FetchParams().sources["oxford_pets"]
    assert source.urls[2] == PETS_SPLIT_URL
    assert "/Yiveen/SyntheticDataFeasibility/4cddb23acaedf30299e94fd6c7c867702b074d91/" in PETS_SPLIT_URL
    assert source.checksums[2] == "sha256:9edc56fea8bec95f8ccf55f661d7a9ec47525a9fbb6ccb9a574026381d04ea6f"


def local_site(tmp_path, rows=None, split_bytes=None, pin=None):
    """The fixture as a local folder (no server) with the given split file; params that may pin it."""
    archives, _expected = pets_archives(tmp_path / "mine")
    archives["split_coop.csv"].write_bytes(split_bytes if split_bytes is not None else split_csv_bytes(rows))
    source = SourceParams(
        urls=[PETS_SPLIT_URL] if pin else [], checksums=[pin] if pin else [], archive=str(tmp_path / "mine")
    )
    return archives["split_coop.csv"], params_for(source)


def line_of(rows, row):
    return rows.index(row) + 2  # the header is line 1


BAD_SPLIT_FILES = {
    "a row missing": (
        lambda rows: [r for r in rows if r != ("train", "american_bulldog/american_bulldog_3.jpg")],
        r"split_coop\.csv: no row for 1 image\(s\) of \S*annotations/trainval\.txt, e.g. \['american_bulldog_3'\]",
    ),
    "an extra row": (
        lambda rows: rows[:4] + [("train", "Abyssinian/Abyssinian_99.jpg")] + rows[4:],
        r"split_coop\.csv:6: 'Abyssinian/Abyssinian_99\.jpg' is neither in \S*trainval\.txt nor in \S*test\.txt",
    ),
    "a repeated row": (
        lambda rows: rows + [("val", "american_bulldog/american_bulldog_2.jpg")],
        rf"split_coop\.csv:{len(pets_split_rows()) + 2}: image 'american_bulldog_2' \('american_bulldog/american_bulldog_2\.jpg'\) "
        rf"has a second row; its first is line {line_of(pets_split_rows(), ('val', 'american_bulldog/american_bulldog_2.jpg'))}",
    ),
    "a test image trained on": (
        lambda rows: [("train", n) if n == "Abyssinian/Abyssinian_7.jpg" else (s, n) for s, n in rows],
        rf"split_coop\.csv:{line_of(pets_split_rows(), ('test', 'Abyssinian/Abyssinian_7.jpg'))}: "
        r"'Abyssinian/Abyssinian_7\.jpg' is in split 'train', but \S*test\.txt lists it: the test rows must be exactly",
    ),
    "a trainval image in test": (
        lambda rows: [("test", n) if n == "great_pyrenees/great_pyrenees_1.jpg" else (s, n) for s, n in rows],
        r"'great_pyrenees/great_pyrenees_1\.jpg' is in split 'test', but \S*trainval\.txt lists it",
    ),
    "an unknown split": (
        lambda rows: [("holdout", rows[0][1]), *rows[1:]],
        r"split_coop\.csv:2: split 'holdout': expected one of train, val, test",
    ),
    "a third field": (
        lambda rows: [(rows[0][0], rows[0][1] + ",x"), *rows[1:]],
        r"split_coop\.csv:2: expected 'split,filename', got",
    ),
    "no extension": (
        lambda rows: [(rows[0][0], "Abyssinian/Abyssinian_2"), *rows[1:]],
        r"split_coop\.csv:2: file name 'Abyssinian/Abyssinian_2': expected '<breed folder>/<image id>\.jpg'",
    ),
}


@pytest.mark.parametrize("case", BAD_SPLIT_FILES)
def test_a_bad_split_file_stops_fetch_naming_file_and_line(tmp_path, case):
    change, message = BAD_SPLIT_FILES[case]
    _path, params = local_site(tmp_path, change(pets_split_rows()))
    with pytest.raises(ValueError, match=message):
        fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    assert not (tmp_path / "real").exists()


def test_a_wrong_header_and_an_unsafe_id_are_refused(tmp_path):
    rows = pets_split_rows()
    _path, params = local_site(tmp_path, split_bytes=b"split;filename\r\n" + split_csv_bytes(rows).split(b"\r\n", 1)[1])
    with pytest.raises(
        ValueError, match=r"split_coop\.csv:1: expected the header 'split,filename', got \['split;filename'\]"
    ):
        fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    _path, params = local_site(tmp_path / "b", rows[:2] + [("train", "Abyssinian/../../escaped x.jpg")] + rows[2:])
    with pytest.raises(UnsafePathError, match=r"split_coop\.csv:4: unsafe id 'escaped x'"):
        fetch_dataset("oxford_pets", tmp_path / "b" / "real", params, tmp_path / "b" / "downloads")


def test_unix_line_endings_and_a_trailing_blank_line_read_the_same(tmp_path):
    text = split_csv_bytes(pets_split_rows()).replace(b"\r\n", b"\n") + b"\n"
    _path, params = local_site(tmp_path, split_bytes=text)
    manifest = fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    assert sorted(manifest.loc[manifest["split"] == "val", "id"]) == PETS_VAL


def test_a_local_folder_without_the_split_file_names_its_url(tmp_path):
    path, params = local_site(tmp_path, pets_split_rows())
    path.unlink()
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"split_coop.csv: list {PETS_SPLIT_URL} in fetch.sources.oxford_pets.urls")
    ):
        fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")


def test_a_local_split_file_is_checked_against_the_pinned_sha256(tmp_path):
    rows = pets_split_rows()
    good = split_csv_bytes(rows)
    _path, params = local_site(tmp_path, split_bytes=good, pin="sha256:" + hashlib.sha256(good).hexdigest())
    fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    _path, params = local_site(tmp_path / "b", split_bytes=good, pin="sha256:" + "0" * 64)
    with pytest.raises(
        ChecksumError,
        match=rf"split_coop\.csv: sha256 {hashlib.sha256(good).hexdigest()}, but fetch\.sources\.oxford_pets pins 0{{64}}",
    ):
        fetch_dataset("oxford_pets", tmp_path / "b" / "real", params, tmp_path / "b" / "downloads")
