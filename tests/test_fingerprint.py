"""The code fingerprint's rules (varireal.fingerprint): what re-keys an item and what cannot.

Each test changes a copy of the code (tests/code_copy.py) and compares one module's fingerprint
before and after; the change matrix over every kind of item is tests/test_item_keys.py.
"""

from __future__ import annotations

import pytest
from code_copy import code  # noqa: F401  (a fixture)

from varireal import fingerprint

OPS = "varireal/attributes/image_ops.py"


def _of(module: str) -> str:
    fingerprint.clear_caches()
    return fingerprint.code_fingerprint(module)


@pytest.mark.parametrize(
    "old, new",
    [
        ('"""Pure image operations', '"""Pure image operations, a docstring reworded'),  # a docstring
        ("MASK_THRESHOLD = 127  # mask pixels", "MASK_THRESHOLD = 127  # a comment reworded; mask pixels"),
        (  # an error message
            'raise ValueError(f"dilation kernel={kernel!r}: expected square or ellipse")',
            'raise ValueError(f"dilation kernel {kernel!r} is neither square nor ellipse")',
        ),
        (
            "def dilate(mask: np.ndarray, size: int, kernel: str)",
            "def dilate(\n    mask: np.ndarray, size: int, kernel: str\n)",
        ),
    ],
    ids=["docstring", "comment", "error message", "formatting"],
)
def test_what_cannot_change_an_item_keeps_the_fingerprint(code, old, new):
    before = _of("varireal.attributes.image_ops")
    code.replace(OPS, old, new)
    assert _of("varireal.attributes.image_ops") == before


def test_a_line_that_shapes_pixels_changes_the_fingerprint_of_every_module_that_runs_it(code):
    before = {
        name: _of(name) for name in ("varireal.attributes.image_ops", "varireal.attributes.color", "varireal.masks")
    }
    code.replace(OPS, "MASK_THRESHOLD = 127", "MASK_THRESHOLD = 128")
    after = {name: _of(name) for name in before}
    assert after["varireal.attributes.image_ops"] != before["varireal.attributes.image_ops"]
    assert after["varireal.attributes.color"] != before["varireal.attributes.color"]  # imports it, through steps
    assert after["varireal.masks"] == before["varireal.masks"]  # does not


def test_a_moved_or_renamed_module_keeps_every_fingerprint(code):
    before = code.fingerprints()
    code.move("varireal.attributes.image_ops", "varireal.attributes.pixels")  # a rename
    code.move("varireal.colors", "varireal.attributes.colors")  # a move to another package
    assert not (code.root / OPS).exists()
    assert code.fingerprints() == before


def test_a_pydantic_models_fields_and_validators_are_settings_not_code(code):
    """The resolved values are in every key: a schema's description, default or check shapes no pixel."""
    before = _of("varireal.attributes.color")
    code.replace(
        "varireal/attributes/color.py", "alpha: AlphaRange  # tint weight", "alpha: AlphaRange = None  # tint weight"
    )
    code.replace(
        "varireal/attributes/step_settings.py",
        'description="gray level around the object in the IP-Adapter\'s image"',
        'description="the gray around the object in the IP-Adapter\'s image"',
    )
    code.replace("varireal/attributes/step_settings.py", "if self.low > self.high:", "if self.low > self.high + 0:")
    assert _of("varireal.attributes.color") == before


def test_an_import_for_type_hints_only_is_no_code(code):
    before = _of("varireal.attributes.pipelines")
    assert "if TYPE_CHECKING:" in (code.root / "varireal/attributes/pipelines.py").read_text()
    code.replace("varireal/models/lock.py", 'LOCK_NAME = "lock.json"', 'LOCK_NAME = "models.lock.json"')
    assert _of("varireal.attributes.pipelines") == before


def test_an_import_switched_to_another_module_changes_the_fingerprint(code):
    """Paths are not hashed, but what an import names is: the module it now runs has other code."""
    before = _of("varireal.attributes.texture")
    code.replace(
        "varireal/attributes/texture.py",
        "from varireal.seeding import item_rng",
        "from numpy.random import default_rng as item_rng",
    )
    assert _of("varireal.attributes.texture") != before


def test_an_import_circle_or_an_unknown_module_is_an_error_naming_it(code):
    (code.root / "varireal/first.py").write_text("from varireal.second import B\nA = 1\n")
    (code.root / "varireal/second.py").write_text("from varireal.first import A\nB = A\n")
    with pytest.raises(ValueError, match="import circle: varireal.first -> varireal.second -> varireal.first"):
        _of("varireal.first")
    with pytest.raises(ValueError, match="varireal.no_such_module: not a module of this project"):
        _of("varireal.no_such_module")
