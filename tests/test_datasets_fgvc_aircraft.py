"""FGVC-Aircraft 2013b at the variant level, with an interrupted download on the way."""

import hashlib
import json

from datasets_fixtures import MIN_SIDE, aircraft_archive, serve

from varireal.datasets.fetch import fetch_dataset
from varireal.io import read_table
from varireal.settings.fetch import FetchParams, SourceParams


def test_official_splits_and_variant_names_survive_an_interrupted_download(tmp_path):
    archive, expected = aircraft_archive(tmp_path / "site")
    path = "/archives/fgvc-aircraft-2013b.tar.gz"
    with serve({path: archive.read_bytes()}, drop_first={path}) as server:
        source = SourceParams(urls=[server.url + path], checksums=[None])  # as the default: none published
        params = FetchParams(min_side=MIN_SIDE, retry_wait_s=0, sources={"fgvc_aircraft": source})
        manifest = fetch_dataset("fgvc_aircraft", tmp_path / "real", params, tmp_path / "downloads")
    assert [rng for _path, rng in server.requests][0] is None and server.requests[1][1].startswith("bytes=")

    assert manifest.groupby("split").size().to_dict() == expected.counts
    classes = read_table(tmp_path / "real" / "classes.csv")
    assert classes["class_name"].tolist() == ["A300B4", "Boeing 737-200", "F-16A/B"]
    assert classes["folder"].tolist() == ["A300B4", "Boeing_737-200", "F-16A_B"]
    f16 = manifest[manifest["class_name"] == "F-16A/B"]
    assert set(f16["class_index"]) == {2} and all(path.split("/")[1] == "F-16A_B" for path in f16["path"])
    assert manifest.loc[manifest["id"] == "1000006", "split"].item() == "val"  # from images_variant_val.txt
    assert manifest["source"].iloc[0].startswith("fgvc-aircraft-2013b.tar.gz:fgvc-aircraft-2013b/data/images/")

    rejected = read_table(tmp_path / "real" / "rejected.csv")
    got = {
        source.rsplit("/", 2)[-2] + "/" + source.rsplit("/", 1)[1]: reason.split(":")[0]
        for source, reason in zip(rejected["source"], rejected["reason"])
    }
    assert got == expected.rejected

    # No checksum was pinned, so the sha256 that ran is on record.
    [entry] = json.loads((tmp_path / "real" / "sources.json").read_text())["inputs"]
    assert entry["pinned"] is None and entry["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_protocol_paper_trains_on_trainval_as_the_paper_does(tmp_path):
    archive, expected = aircraft_archive(tmp_path / "site")
    params = FetchParams(min_side=MIN_SIDE, sources={"fgvc_aircraft": SourceParams(archive=str(archive))})
    manifest = fetch_dataset("fgvc_aircraft", tmp_path / "real", params, tmp_path / "downloads", protocol="paper")
    counts = manifest.groupby("split").size().to_dict()
    assert counts == {"train": expected.counts["train"] + expected.counts["val"], "test": expected.counts["test"]}
    row = manifest.set_index("id").loc["1000006"]  # listed in images_variant_val.txt
    assert row.split == "train" and row.path.startswith("train/")
