"""Oxford-IIIT Pet from its two official archives, served by a local HTTP server."""

import hashlib
import json

import pandas as pd
import pytest
from datasets_fixtures import MIN_SIDE, pets_archives, serve

from varireal.datasets.fetch import fetch_dataset
from varireal.datasets.config import FetchParams, SourceParams
from varireal.io import read_table


def sha256(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def params_for(source: SourceParams) -> FetchParams:
    return FetchParams(min_side=MIN_SIDE, retry_wait_s=0, retries=1, sources={"oxford_pets": source})


@pytest.fixture
def pets_site(tmp_path):
    """The two archives on a local server, and params that pin their checksums."""
    archives, expected = pets_archives(tmp_path / "site")
    files = {f"/pets/{name}": path.read_bytes() for name, path in archives.items()}
    with serve(files) as server:
        urls = [f"{server.url}/pets/{name}" for name in archives]
        yield server, params_for(SourceParams(urls=urls, checksums=[sha256(p) for p in archives.values()])), expected


def tree_bytes(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


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
    assert [entry["file"] for entry in inputs] == ["images.tar.gz", "annotations.tar.gz"]
    assert all(entry["pinned"] == "sha256:" + entry["sha256"] for entry in inputs)


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
    params = params_for(SourceParams(urls=["http://127.0.0.1:9/unreachable.tar.gz"], checksums=[None], archive=str(tmp_path / "mine")))
    manifest = fetch_dataset("oxford_pets", tmp_path / "real", params, tmp_path / "downloads")
    assert manifest.groupby("split").size().to_dict() == expected.counts
    inputs = json.loads((tmp_path / "real" / "sources.json").read_text())["inputs"]
    assert [entry.get("archive", entry.get("folder")) for entry in inputs] == [
        str(tmp_path / "mine"), str(archives["annotations.tar.gz"]), str(archives["images.tar.gz"])]


def test_a_wrong_checksum_stops_the_fetch_naming_the_url(tmp_path, pets_site):
    server, params, _expected = pets_site
    source = params.sources["oxford_pets"]
    bad = params_for(SourceParams(urls=source.urls, checksums=[source.checksums[0], "sha256:" + "f" * 64]))
    with pytest.raises(ValueError, match=rf"{server.url}/pets/annotations.tar.gz: sha256 mismatch: expected f{{64}}, got [0-9a-f]{{64}}"):
        fetch_dataset("oxford_pets", tmp_path / "real", bad, tmp_path / "downloads")
    assert not (tmp_path / "real").exists()
    assert not (tmp_path / "downloads" / "oxford_pets" / "annotations.tar.gz").exists()


def test_protocol_paper_keeps_the_coop_train_split_the_paper_trains_on(tmp_path, pets_site):
    _server, params, _expected = pets_site
    heldout = fetch_dataset("oxford_pets", tmp_path / "a", params, tmp_path / "downloads")
    paper = fetch_dataset("oxford_pets", tmp_path / "b", params, tmp_path / "downloads", protocol="paper")
    pd.testing.assert_frame_equal(paper, heldout)
