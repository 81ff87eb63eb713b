"""The shared layout: safe folder names, a val split chosen by id, and reasons for rejections."""

from pathlib import Path

import pytest
from datasets_fixtures import image_bytes

from varireal.datasets.fetch import fetch_dataset
from varireal.datasets.layout import Candidate, hold_out_val, rejection_reason, safe_folder_names, val_count
from varireal.settings.fetch import FetchParams


def test_folder_names_are_safe_and_unique_and_keep_readable_names():
    names = [
        "F-16A/B",
        "F-16A B",
        "Boeing 737-200",
        "Ford F-150 Regular Cab 2012",
        "Škoda Octavia",
        "../..",
        "cat",
        "CAT",
    ]
    folders = safe_folder_names(names)
    assert folders[:4] == ["F-16A_B", folders[1], "Boeing_737-200", "Ford_F-150_Regular_Cab_2012"]
    assert folders[4] == "Skoda_Octavia" and folders[5] == "class" and folders[6] == "cat"
    assert len({folder.lower() for folder in folders}) == len(folders)  # unique even ignoring case
    assert all(
        set(folder) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for folder in folders
    )
    assert safe_folder_names(names) == folders  # no state between calls


@pytest.mark.parametrize(
    ("n", "expected"), [(0, 0), (1, 0), (2, 1), (5, 1), (6, 1), (8, 2), (100, 20), (93, 19), (96, 19)]
)
def test_val_takes_a_rounded_fifth_of_each_class_leaving_train_nonempty(n, expected):
    assert val_count(n, 0.2) == expected


def candidates(n_per_class: int, classes: int = 3) -> list[Candidate]:
    return [
        Candidate(f"c{k}_{i}", k, "train", Path(f"c{k}_{i}.jpg"), f"src:c{k}_{i}.jpg")
        for k in range(classes)
        for i in range(n_per_class)
    ]


def test_val_choice_depends_on_ids_not_on_listing_order():
    listed = candidates(10)
    forward = hold_out_val(listed, 0.2, "pets")
    backward = hold_out_val(list(reversed(listed)), 0.2, "pets")
    val_ids = {c.id for c in forward if c.split == "val"}
    assert val_ids == {c.id for c in backward if c.split == "val"}
    assert [sum(c.split == "val" and c.class_index == k for c in forward) for k in range(3)] == [2, 2, 2]
    assert val_ids != {f"c{k}_{i}" for k in range(3) for i in range(2)}  # not simply the first listed


def test_test_images_never_move_to_val():
    listed = candidates(5) + [Candidate("t1", 0, "test", Path("t1.jpg"), "src:t1.jpg")]
    assert [c.split for c in hold_out_val(listed, 0.5, "x") if c.id == "t1"] == ["test"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("rgb", None),
        ("gray", None),
        ("cmyk", None),
        ("rgba", None),
        ("palette", None),
        ("truncated", "unreadable: "),
        ("tiny", "too small: 4x4 px, min_side=16"),
    ],
)
def test_rejection_reasons(tmp_path, kind, reason):
    file = tmp_path / f"{kind}.jpg"
    file.write_bytes(image_bytes(1, kind))
    got = rejection_reason(file, min_side=16)
    assert got == reason if reason is None else got.startswith(reason)
    assert got is None or str(tmp_path) not in got  # reasons are the same on every machine


def test_missing_and_non_image_files_are_rejected_with_their_reason(tmp_path):
    assert rejection_reason(tmp_path / "absent.jpg", 16).startswith("missing: ")
    (tmp_path / "notes.jpg").write_text("hello")
    assert rejection_reason(tmp_path / "notes.jpg", 16).startswith("unreadable: ")


def test_an_unknown_dataset_lists_the_allowed_names(tmp_path):
    with pytest.raises(ValueError) as caught:
        fetch_dataset("imagenet", tmp_path / "out", FetchParams(), tmp_path / "dl")
    for name in ("'imagenet'", "demo", "oxford_pets", "fgvc_aircraft", "stanford_cars"):
        assert name in str(caught.value)
