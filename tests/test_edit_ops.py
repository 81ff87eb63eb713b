"""Edit image operations: the work square, masks, blends, composites and color names."""

import numpy as np
import pytest
from PIL import Image

from varireal import colors
from varireal.attributes import image_ops as ops


def _image_and_mask(width: int = 50, height: int = 30) -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[8:22, 10:30] = 255
    return image, Image.fromarray(mask, mode="L")


def test_work_square_pads_bottom_right_and_keeps_the_mask_out_of_the_padding():
    image, mask = _image_and_mask()
    square = ops.work_square(image, mask, 64)
    assert square.image.size == (64, 64) and square.mask.shape == (64, 64)
    assert square.content == (64, 38)
    assert np.asarray(square.image)[38:].sum() == 0
    assert not square.mask[38:].any() and square.mask.any()


def test_work_square_refuses_a_mask_of_another_size():
    image, mask = _image_and_mask()
    with pytest.raises(ValueError, match="mask is 20x20 px but the image is 50x30 px"):
        ops.work_square(image, mask.resize((20, 20)), 64)


def test_composites_keep_the_protected_part_bit_identical_at_the_original_size():
    image, mask = _image_and_mask()
    square = ops.work_square(image, mask, 64)
    edited = Image.new("RGB", (64, 64), (255, 0, 255))
    inside = np.asarray(mask) > 127
    kept_object = np.asarray(ops.keep_object(square, edited))
    kept_background = np.asarray(ops.keep_background(square, edited))
    source = np.asarray(image)
    assert kept_object.shape == kept_background.shape == source.shape
    assert (kept_object[inside] == source[inside]).all() and (kept_object[~inside] == (255, 0, 255)).all()
    assert (kept_background[~inside] == source[~inside]).all() and (kept_background[inside] == (255, 0, 255)).all()


def test_dilate_grows_by_the_kernel_and_zero_is_a_copy():
    mask = np.zeros((21, 21), dtype=bool)
    mask[10, 10] = True
    grown = ops.dilate(mask, 7, "ellipse")
    assert grown[10, 7] and grown[10, 13] and not grown[10, 6] and not grown[10, 14]
    assert not grown[7, 7]  # round corners
    square = ops.dilate(mask, 7, "square")
    assert square[7, 7] and square[13, 13] and not square[6, 10] and square.sum() == 49
    # an even side grows one px less on the top/left, as cv2.dilate(mask, np.ones((k, k))) in the reference
    even = np.argwhere(ops.dilate(mask, 6, "square"))
    assert (even.min(axis=0) == 8).all() and (even.max(axis=0) == 13).all()
    assert (ops.dilate(mask, 0, "square") == mask).all()
    with pytest.raises(ValueError, match="kernel='disk': expected square or ellipse"):
        ops.dilate(mask, 3, "disk")


def test_soft_mask_blurs_across_the_edge():
    mask = np.zeros((32, 32), dtype=bool)
    mask[:, 16:] = True
    soft = np.asarray(ops.soft_mask(mask, 2))
    assert soft[0, 0] == 0 and soft[0, 31] == 255 and 0 < soft[0, 15] < 255 and 0 < soft[0, 16] < 255
    assert set(np.unique(np.asarray(ops.mask_image(mask)))) == {0, 255}


def test_tint_mixes_inside_the_mask_only():
    image = Image.new("RGB", (4, 4), (100, 100, 100))
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2] = True
    tinted = np.asarray(ops.tint(image, mask, (200, 0, 100), 0.5))
    assert (tinted[:2] == (150, 50, 100)).all() and (tinted[2:] == 100).all()


def test_swatch_fill_crops_the_centre_and_upscales():
    swatch = Image.new("RGB", (10, 10), (0, 0, 0))
    swatch.paste((255, 255, 255), (3, 3, 7, 7))
    fill = ops.fill_from_swatch(swatch, 16, 0.4)
    assert fill.size == (16, 16) and np.asarray(fill).min() == 255


def test_canny_gives_three_channel_edges_at_a_step():
    image = Image.new("RGB", (32, 32), (0, 0, 0))
    image.paste((255, 255, 255), (16, 0, 32, 32))
    edges = np.asarray(ops.canny(image, 50, 150))
    assert edges.shape == (32, 32, 3) and edges[:, 15:17].max() == 255 and edges[:, :10].max() == 0


def test_object_only_greys_out_the_background():
    image = Image.new("RGB", (4, 4), (9, 9, 9))
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    pixels = np.asarray(ops.object_only(image, mask))
    assert (pixels[0, 0] == 9).all() and (pixels[1:] == 127).all()


TABLE = {"ruddy": (170, 70, 50), "blue gray": (100, 120, 140), "Fawn": (190, 150, 110), "red": (250, 0, 0)}


@pytest.mark.parametrize(
    ("value", "rgb", "source"),
    [
        ("(ruddy)1.3", (170, 70, 50), "reference"),  # the Compel weight is dropped before the lookup
        ("(blue gray)1.3", (100, 120, 140), "reference"),  # not pure blue from the word "blue"
        ("fawn", (190, 150, 110), "reference"),  # a table name, case ignored
        ("(red)1.0", (250, 0, 0), "reference"),  # the table wins over CSS4
        ("(Royal Blue)1.3", (65, 105, 225), "css4"),  # spaces dropped: royalblue
        ("(neon pink)1.3", (254, 1, 154), "xkcd"),  # xkcd:neon pink
        ("(electric lime)1.3", (168, 255, 4), "xkcd"),
    ],
)
def test_colour_values_resolve_through_the_table_then_css4_then_xkcd(value, rgb, source):
    assert colors.resolve_color(value, TABLE) == (rgb, source)


def test_a_colour_no_table_names_is_an_error_never_an_invented_colour():
    with pytest.raises(
        colors.UnknownColorError,
        match=r"colour value '\(ruddy\)1.3' \(name 'ruddy'\) is neither in the colour table \(none given\)",
    ):
        colors.resolve_color("(ruddy)1.3")
    with pytest.raises(ValueError, match="'royal blue flight suit'"):
        colors.resolve_color("royal blue flight suit", TABLE)  # no longest-word-run guess either
    assert colors.resolve_color("red", TABLE, table_source="file") == ((250, 0, 0), "file")


def test_color_name_is_the_first_balanced_group_or_the_value():
    assert colors.color_name("(ruddy)1.3") == "ruddy"
    assert colors.color_name("((a) b)c (d)") == "(a) b"
    assert colors.color_name("  plain name ") == "plain name"
