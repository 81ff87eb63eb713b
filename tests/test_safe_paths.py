"""Ids and class names from data files never steer a write outside a stage's output folder.

Each traversal test plants '../' where a user or a tampered archive could put it (a dataset's
list file, the real manifest, a mask job), and places a real image where the traversal would
read from, so that without the checks the bytes would land outside: the test then asserts a
clear error naming the file and row, and that the folders above the output hold nothing new.
"""

import re
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from datasets_fixtures import MIN_SIDE, aircraft_archive, image_bytes, pets_archives, write_tar
from PIL import Image
from pydantic import ValidationError

from varireal.datasets.fetch import fetch_dataset
from varireal.datasets.layout import Candidate, Collected, write_dataset
from varireal.edit.items import read_sources
from varireal.finetune.data import real_rows
from varireal.io import write_table
from varireal.mask_set import MaskStore, build_masks
from varireal.masks import MaskJob, MaskSettings
from varireal.safe_paths import UnsafePathError, check_class_name, check_id, inside
from varireal.settings.fetch import AIRCRAFT_URL, FetchParams, SourceParams
from varireal.settings.whole import load_all_params
from varireal.shards import Sample, write_shard

ESCAPE = "../../../escaped"


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Abyssinian_1", "0034309", "cars_train_00001", "car_ims_000001", "a.b-c"])
def test_ids_of_the_real_datasets_pass(value):
    assert check_id(value, "list.txt:1") == value


@pytest.mark.parametrize("value", [ESCAPE, "..", ".", ".hidden", "a/b", "a\\b", "a\0b", "", " x", "x" * 129, 7, None])
def test_an_unsafe_id_is_refused_naming_where_and_the_value(value):
    with pytest.raises(UnsafePathError, match=re.escape(f"trainval.txt:7: unsafe id {value!r}: expected 1-128 of A-Z")):
        check_id(value, "trainval.txt:7")


def test_class_names_may_hold_slashes_and_spaces_but_not_control_characters():
    assert check_class_name("F-16A/B", "variants.txt:3") == "F-16A/B"
    for bad in ("", "   ", "Boeing\n737", "F-16\0", "x" * 201):
        with pytest.raises(UnsafePathError, match=re.escape(f"variants.txt:3: bad class name {bad!r}")):
            check_class_name(bad, "variants.txt:3")


def test_inside_resolves_dot_dot_and_symlinked_folders_but_not_the_file(tmp_path):
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    assert inside(out / "masks" / "a.png", out) == out / "masks" / "a.png"
    outside = rf"refusing the path .*escaped\.png: it resolves to .*, outside its output folder {re.escape(str(out))}"
    with pytest.raises(UnsafePathError, match=outside):
        inside(out / "masks" / ".." / ".." / "escaped.png", out)
    (out / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside its output folder"):
        inside(out / "elsewhere" / "a.png", out)
    (tmp_path / "cache-object").write_bytes(b"x")  # DVC may link an output's files to its cache
    (out / "masks" / "linked.png").symlink_to(tmp_path / "cache-object")
    assert inside(out / "masks" / "linked.png", out) == out / "masks" / "linked.png"


# --- dataset list files (read by fetch) -----------------------------------------------------------


def test_a_traversal_id_in_the_pets_list_file_stops_fetch_naming_file_and_line(tmp_path):
    archives, _expected = pets_archives(tmp_path / "site")
    members = tar_members(archives["annotations.tar.gz"])
    lines = members["annotations/trainval.txt"].decode().splitlines()
    lines.insert(2, f"{ESCAPE} 4 1 1")  # line 3; class 4 is new, so no other check trips first
    members["annotations/trainval.txt"] = ("\n".join(lines) + "\n").encode()
    write_tar(archives["annotations.tar.gz"], members)
    work = tmp_path / "a" / "b" / "c"
    downloads, out = work / "downloads", work / "real"
    # Where images/../../../escaped.jpg would be read from: without the check it would be copied.
    (downloads / "oxford_pets").mkdir(parents=True)
    (downloads / "oxford_pets" / "escaped.jpg").write_bytes(image_bytes(1))
    params = FetchParams(min_side=MIN_SIDE, sources={"oxford_pets": SourceParams(archive=str(tmp_path / "site"))})

    with pytest.raises(UnsafePathError, match=rf"annotations/trainval\.txt:3: unsafe id '{re.escape(ESCAPE)}'"):
        fetch_dataset("oxford_pets", out, params, downloads)
    assert files_under(out) == []
    assert sorted(p.name for p in work.iterdir()) == ["downloads"]  # out/../ holds nothing new
    assert not [p for p in tmp_path.rglob("escaped*") if p != downloads / "oxford_pets" / "escaped.jpg"]


def test_a_traversal_id_or_a_control_character_in_the_aircraft_lists_is_named(tmp_path):
    archive, _expected = aircraft_archive(tmp_path / "site")
    members = tar_members(archive)
    root = "fgvc-aircraft-2013b/data"
    planted = dict(members)
    planted[f"{root}/images_variant_test.txt"] += b"../images/1000001 A300B4\n"
    write_tar(archive, planted)
    params = FetchParams(min_side=MIN_SIDE, sources={"fgvc_aircraft": SourceParams(archive=str(archive))})
    with pytest.raises(UnsafePathError, match=r"images_variant_test\.txt:7: unsafe id '\.\./images/1000001'"):
        fetch_dataset("fgvc_aircraft", tmp_path / "out" / "real", params, tmp_path / "downloads")
    assert files_under(tmp_path / "out") == []

    planted = dict(members)
    planted[f"{root}/variants.txt"] = b"A300B4\nBoeing 737-200\nF-16A/B\x1b\n"
    write_tar(archive, planted)
    with pytest.raises(UnsafePathError, match=r"variants\.txt:3: bad class name 'F-16A/B\\x1b'"):
        fetch_dataset("fgvc_aircraft", tmp_path / "out" / "real", params, tmp_path / "downloads2")


def test_the_layout_writer_refuses_an_id_no_dataset_module_checked(tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(image_bytes(3))
    collected = Collected(["cat"], [Candidate(ESCAPE, 0, "train", image, "mine.tar:x.jpg")], [])
    out = tmp_path / "a" / "b" / "real"
    with pytest.raises(UnsafePathError, match=rf"demo: mine\.tar:x\.jpg: unsafe id '{re.escape(ESCAPE)}'"):
        write_dataset(out, "demo", collected, FetchParams(min_side=MIN_SIDE))
    assert files_under(tmp_path / "a") == []


# --- the real manifest (read by masks, edit and train) --------------------------------------------


@pytest.fixture
def real_dir(tmp_path) -> Path:
    """data/real/<dataset> with two images; the second row's id climbs out of every output folder."""
    real = tmp_path / "data" / "real" / "toy"
    (real / "train" / "cat").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (32, 32), (200, 10, 10)).save(real / "train" / "cat" / f"{name}.png")
    rows = [
        {"id": "a", "path": "train/cat/a.png", "class_name": "cat", "class_index": 0, "split": "train", "source": "x"},
        {
            "id": ESCAPE,
            "path": "train/cat/b.png",
            "class_name": "cat",
            "class_index": 0,
            "split": "train",
            "source": "x",
        },
    ]
    write_table(real / "manifest.csv", pd.DataFrame(rows))
    return real


def test_the_edit_stage_refuses_a_traversal_id_in_the_real_manifest_naming_the_row(real_dir, tmp_path):
    masks = tmp_path / "data" / "masks" / "toy"
    write_table(masks / "manifest.csv", pd.DataFrame([{"id": "a", "mask_path": "masks/a.png", "status": "detected"}]))
    with pytest.raises(
        UnsafePathError, match=rf"{re.escape(str(real_dir / 'manifest.csv'))}:3 \(column 'id'\): unsafe id"
    ):
        read_sources(real_dir, masks)


def test_the_train_stage_refuses_a_traversal_id_or_image_path_in_the_real_manifest(real_dir):
    with pytest.raises(UnsafePathError, match=r"manifest\.csv:3 \(column 'id'\): unsafe id '\.\./\.\./\.\./escaped'"):
        real_rows(real_dir, "train")
    manifest = pd.read_csv(real_dir / "manifest.csv", dtype=str)
    manifest.loc[1, ["id", "path"]] = ["b", "../../../../etc/hostname"]
    write_table(real_dir / "manifest.csv", manifest)
    with pytest.raises(
        UnsafePathError, match=r"manifest\.csv:3 \(column 'path'\): '\.\./\.\./\.\./\.\./etc/hostname': refusing"
    ):
        real_rows(real_dir, "train")


def test_the_masks_stage_writes_nothing_outside_its_folder_for_a_traversal_id(real_dir, tmp_path):
    out = tmp_path / "data" / "masks" / "toy"
    jobs = [
        MaskJob(i, real_dir / "train" / "cat" / f"{n}.png", "cat", "a cat.") for i, n in (("a", "a"), (ESCAPE, "b"))
    ]
    settings = MaskSettings(work_size=64, box_threshold=0.0, text_threshold=0.0, batch_size=2)
    # The check comes before any model runs, so no model is needed to show it.
    with pytest.raises(UnsafePathError, match=rf"{re.escape(str(out))}: image id: unsafe id '{re.escape(ESCAPE)}'"):
        build_masks(jobs, out, detector=None, predictor=None, settings=settings, models_key="k")  # type: ignore[arg-type]
    store = MaskStore(out)
    record = {"id": ESCAPE, "status": "detected"}
    with pytest.raises(UnsafePathError, match="unsafe id"):
        store.save(record, Image.new("L", (8, 8)))
    # out/masks/../../../escaped.png would be data/escaped.png: data/ holds only what the fixture wrote.
    assert files_under(tmp_path) == [
        f"data/real/toy/{name}" for name in ("manifest.csv", "train/cat/a.png", "train/cat/b.png")
    ]


def test_a_shard_key_with_a_separator_is_refused(tmp_path):
    for key in ("..\\escaped", "a\0b"):
        with pytest.raises(ValueError, match=re.escape(f"shard sample key {key!r}")):
            write_shard(tmp_path / "a.tar", [Sample(key, b"x", {})])
    assert files_under(tmp_path) == []


# --- fetch.sources: weak checksums and other schemes --------------------------------------------------


def aircraft_from(url: str, checksum: str | None, **fetch: object) -> FetchParams:
    return FetchParams(sources={"fgvc_aircraft": SourceParams(urls=[url], checksums=[checksum])}, **fetch)


def test_md5_checksums_and_non_http_urls_are_refused_unless_allowed():
    md5 = "md5:" + "0" * 32
    with pytest.raises(
        ValidationError, match=r"fetch\.sources\.fgvc_aircraft\.checksums: 'md5:0{32}': an md5 .*allow_weak_sources"
    ):
        aircraft_from(AIRCRAFT_URL, md5)
    for url in ("ftp://example.org/fgvc.tar.gz", "file:///tmp/fgvc.tar.gz", "fgvc.tar.gz"):
        with pytest.raises(
            ValidationError, match=rf"fetch\.sources\.fgvc_aircraft\.urls: '{re.escape(url)}' is not an http\(s\) url"
        ):
            aircraft_from(url, None)
    allowed = aircraft_from("ftp://example.org/a.tgz", md5, allow_weak_sources=True)
    assert allowed.sources["fgvc_aircraft"].checksums == [md5]
    aircraft_from("http://127.0.0.1:8000/a.tgz", None)  # plain http is fine: the sha256 pin is what protects


def test_the_committed_params_pin_every_published_archive_with_a_sha256():
    fetch = load_all_params(Path(__file__).resolve().parents[1] / "params.yaml").fetch
    assert not fetch.allow_weak_sources
    assert fetch.sources["fgvc_aircraft"].checksums == [
        "sha256:d5f68b1b81d6d7831eb9d5c5517074176b5dfbce6bcb43dc14ed1c66a87b8d75"
    ]
    pinned = [c for name in ("oxford_pets", "fgvc_aircraft") for c in fetch.sources[name].checksums]
    assert pinned and all(c is not None and c.startswith("sha256:") for c in pinned)
