"""Stanford Cars from the user's copy, in either official layout."""

import pytest
from datasets_fixtures import MIN_SIDE, cars_all_in_one_zip, cars_devkit_folder, write_tar

from varireal.datasets.fetch import fetch_dataset
from varireal.io import read_table
from varireal.settings.fetch import FetchParams, SourceParams


def params_for(archive) -> FetchParams:
    return FetchParams(min_side=MIN_SIDE, sources={"stanford_cars": SourceParams(archive=str(archive))})


def test_without_an_archive_the_error_says_what_to_provide(tmp_path):
    with pytest.raises(ValueError) as caught:
        fetch_dataset("stanford_cars", tmp_path / "real", FetchParams(), tmp_path / "downloads")
    for fragment in ("fetch.sources.stanford_cars.archive", "cars_meta.mat", "cars_test_annos_withlabels.mat"):
        assert fragment in str(caught.value)


def test_devkit_release_folder(tmp_path):
    folder, expected = cars_devkit_folder(tmp_path / "my_cars")
    manifest = fetch_dataset("stanford_cars", tmp_path / "real", params_for(folder), tmp_path / "downloads")
    assert manifest.groupby("split").size().to_dict() == expected.counts
    classes = read_table(tmp_path / "real" / "classes.csv")
    assert classes["class_name"].tolist() == expected.class_names
    assert classes["folder"].tolist() == [
        "AM_General_Hummer_SUV_2000",
        "Ford_F-150_Regular_Cab_2012",
        "Ram_C_V_Cargo_Van_Minivan_2012",
    ]
    ids = set(manifest["id"])
    assert {"cars_train_00002", "cars_test_00002"} <= ids  # the same file name in both sets, two ids
    row = manifest.set_index("id").loc["cars_test_00006"]
    assert (row.split, row.class_index, row.source) == ("test", 2, "cars_test.tgz:cars_test/00006.jpg")
    rejected = read_table(tmp_path / "real" / "rejected.csv")
    assert (
        dict(zip(rejected["source"].str.split(":").str[1], rejected["reason"].str.split(":").str[0]))
        == expected.rejected
    )


def test_all_in_one_zip_layout(tmp_path):
    archive, expected = cars_all_in_one_zip(tmp_path / "mine")
    manifest = fetch_dataset("stanford_cars", tmp_path / "real", params_for(archive), tmp_path / "downloads")
    assert manifest.groupby("split").size().to_dict() == expected.counts
    assert manifest["id"].str.fullmatch(r"car_ims_\d{6}").all()
    assert set(manifest.loc[manifest["split"] == "test", "id"]) == {f"car_ims_{n:06d}" for n in (6, 7, 13, 14, 20, 21)}


def test_an_archive_in_neither_layout_names_both(tmp_path):
    archive = write_tar(tmp_path / "cars.tgz", {"photos/1.jpg": b"x"})
    with pytest.raises(FileNotFoundError) as caught:
        fetch_dataset("stanford_cars", tmp_path / "real", params_for(archive), tmp_path / "downloads")
    message = str(caught.value)
    assert "devkit layout" in message and "cars_meta.mat" in message and "cars_annos.mat" in message


def test_protocols_paper_and_final_hold_no_val_out_of_the_train_annotations(tmp_path):
    folder, expected = cars_devkit_folder(tmp_path / "my_cars")
    manifest = fetch_dataset(
        "stanford_cars", tmp_path / "real", params_for(folder), tmp_path / "downloads", protocol="paper"
    )
    counts = manifest.groupby("split").size().to_dict()
    assert counts == {"train": expected.counts["train"] + expected.counts["val"], "test": expected.counts["test"]}
    # final trains on the paper's images too: the same layout, only the checkpoint differs
    final = fetch_dataset(
        "stanford_cars", tmp_path / "final", params_for(folder), tmp_path / "downloads", protocol="final"
    )
    assert final.equals(manifest)
