"""The default `demo` dataset: offline, small, every split, and the same bytes on every build."""

import pandas as pd
from PIL import Image

from varireal.datasets.fetch import fetch_dataset
from varireal.io import read_table
from varireal.settings.fetch import DemoParams, FetchParams


def tree_bytes(folder):
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_demo_has_four_classes_in_every_split_with_the_configured_counts(tmp_path):
    manifest = fetch_dataset("demo", tmp_path / "real", FetchParams(), tmp_path / "downloads")
    assert list(manifest.columns) == ["id", "path", "class_name", "class_index", "split", "source"]
    assert manifest["class_name"].nunique() >= 4
    counts = manifest.groupby(["split", "class_index"]).size().unstack()
    assert counts.loc["train"].tolist() == [8] * 4 and counts.loc["val"].tolist() == [4] * 4
    assert counts.loc["test"].tolist() == [4] * 4
    assert list(dict.fromkeys(manifest["split"])) == ["train", "val", "test"]
    assert read_table(tmp_path / "real" / "rejected.csv").empty
    pd.testing.assert_frame_equal(read_table(tmp_path / "real" / "manifest.csv"), manifest)


def test_demo_images_are_small_photos_of_the_configured_size(tmp_path):
    params = FetchParams(
        demo=DemoParams(
            classes=["rocket", "motorcycle"], train_per_class=2, val_per_class=1, test_per_class=1, long_side=96
        )
    )
    manifest = fetch_dataset("demo", tmp_path / "real", params, tmp_path / "downloads")
    assert manifest["class_name"].tolist() == ["rocket"] * 2 + ["motorcycle"] * 2 + ["rocket", "motorcycle"] * 2
    for path in manifest["path"]:
        with Image.open(tmp_path / "real" / path) as image:
            assert max(image.size) == 96 and min(image.size) >= 72 and image.mode == "RGB"


def test_two_builds_are_byte_identical(tmp_path):
    fetch_dataset("demo", tmp_path / "a", FetchParams(), tmp_path / "downloads_a")
    fetch_dataset("demo", tmp_path / "b", FetchParams(), tmp_path / "downloads_b")
    first, second = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert len(first) == 4 * 16 + 4 and first == second
