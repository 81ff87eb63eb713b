"""Which code change remakes which items: the change matrix of docs/pipeline.md, computed.

Each change is made to a copy of the code (tests/code_copy.py); the test asserts exactly which kinds
of item get a new code fingerprint (varireal.keys.ITEM_CODE), and that docs/pipeline.md shows the same
matrix. A kind whose fingerprint is unchanged is reused by `dvc repro`, whatever stage reruns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from code_copy import CodeCopy, code  # noqa: F401  (code: a fixture)

from varireal.fingerprint import shaping_modules
from varireal.keys import ITEM_CODE
from varireal.vocabulary import ATTRIBUTES

REPO = Path(__file__).resolve().parents[1]
EDITS = tuple(f"edits/{attribute}" for attribute in ATTRIBUTES)

# change (as docs/pipeline.md names it) -> (how it is made, the kinds of item it re-keys)
CHANGES: dict[str, tuple[Callable[[CodeCopy], None], tuple[str, ...]]] = {
    "a training-only settings field (its description, a new optional field)": (
        lambda c: (
            c.replace("varireal/settings/train.py", 'description="peak learning rate"', 'description="the peak lr"'),
            c.replace(
                "varireal/settings/train.py",
                "    lora: LoraParams\n",
                "    lora: LoraParams\n    note: str | None = Field(None, description='free text')\n",
            ),
        ),
        (),
    ),
    "an error message of params loading": (
        lambda c: c.replace("varireal/params.py", "unknown key (misspelled?", "not a key (a typo?"),
        (),
    ),
    "a docstring or comment in the shared diffusion steps": (
        lambda c: c.replace("varireal/attributes/steps.py", '"""The diffusion steps', '"""The diffusion calls'),
        (),
    ),
    "a module moved or renamed (image_ops -> pixels, colors into attributes)": (
        lambda c: (
            c.move("varireal.attributes.image_ops", "varireal.attributes.pixels"),
            c.move("varireal.colors", "varireal.attributes.colors"),
        ),
        (),
    ),
    "a new attribute (docs/extending.md: its module, a registry line, its name in the vocabulary)": (
        lambda c: (
            (c.root / "varireal/attributes/weather.py").write_text("from varireal.attributes.kind import Guide\n"),
            c.replace(
                "varireal/attributes/registry.py",
                "from varireal.attributes.texture import TEXTURE\n",
                "from varireal.attributes.texture import TEXTURE\nfrom varireal.attributes import weather  # noqa: F401\n",
            ),
            c.replace("varireal/vocabulary.py", '"texture"]', '"texture", "weather"]'),
        ),
        (),
    ),
    "a judge constant (the expected answers)": (
        lambda c: c.replace(
            "varireal/judge/questions.py",
            'EXPECTED = {"feasible": ("yes", "yes", "yes", "yes")',
            'EXPECTED = {"feasible": ("yes", "yes", "yes", "no")',
        ),
        ("answers",),
    ),
    "the colour method's body (the tint)": (
        lambda c: c.replace(
            "varireal/attributes/color.py",
            "tinted.append(ops.tint(job.square.image, job.square.mask, rgb, alpha, settings.rounding))",
            "tinted.append(ops.tint(job.square.image, job.square.mask, rgb, min(alpha, 0.9), settings.rounding))",
        ),
        ("edits/color",),
    ),
    "a shared diffusion step (inpainting)": (
        lambda c: c.replace("varireal/attributes/steps.py", "strength=step.strength,", "strength=step.strength * 1.0,"),
        EDITS,
    ),
    "the mask post-processing": (
        lambda c: c.replace("varireal/masks.py", "cv2.RETR_EXTERNAL", "cv2.RETR_LIST"),
        ("masks",),
    ),
    "the training objective": (
        lambda c: c.replace("varireal/finetune/objective.py", "def ", "def _unused() -> None:\n    pass\n\n\ndef ", 1),
        ("checkpoints",),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_re_keys_exactly_the_items_it_can_shape(code, change):
    make, expected = CHANGES[change]
    before = code.fingerprints()
    make(code)
    after = code.fingerprints()
    assert sorted(kind for kind in ITEM_CODE if after[kind] != before[kind]) == sorted(expected)


def test_docs_show_the_matrix_the_tests_compute():
    text = (REPO / "docs/pipeline.md").read_text()
    section = text[text.index("| change |") :].split("\n\n")[0].splitlines()
    header = [cell.strip() for cell in section[0].strip("|").split("|")]
    assert header[1:] == list(ITEM_CODE), "the matrix's columns are the kinds of item"
    shown = {}
    for row in section[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        shown[cells[0]] = tuple(kind for kind, cell in zip(ITEM_CODE, cells[1:]) if cell == "remade")
        assert set(cells[1:]) <= {"remade", "kept"}, row
    assert shown == {change: tuple(k for k in ITEM_CODE if k in expected) for change, (_, expected) in CHANGES.items()}


def test_an_items_code_is_its_own_and_nothing_of_the_stages_around_it():
    """The guard: what each kind of item fingerprints (varireal.fingerprint.shaping_modules) never reaches
    another stage's code, the settings, the command line or another attribute's method."""
    closures = {kind: shaping_modules(*roots) for kind, roots in ITEM_CODE.items()}
    everywhere = (
        "varireal.settings",
        "varireal.params",
        "varireal.cli",
        "varireal.cost_plan",
        "stages",
        "varireal.study",
    )
    for kind, modules in closures.items():
        assert not [m for m in modules if m.startswith(everywhere)], kind
    packages = {
        "masks": ("varireal.edit", "varireal.attributes", "varireal.judge", "varireal.finetune", "varireal.filter"),
        "answers": ("varireal.edit", "varireal.attributes", "varireal.finetune", "varireal.masks"),
        "checkpoints": ("varireal.edit", "varireal.attributes", "varireal.judge", "varireal.masks"),
    }
    for kind, forbidden in packages.items():
        assert not [m for m in closures[kind] if m.startswith(forbidden)], kind
    for attribute in ATTRIBUTES:
        edits = closures[f"edits/{attribute}"]
        others = [f"varireal.attributes.{other}" for other in ATTRIBUTES if other != attribute]
        assert f"varireal.attributes.{attribute}" in edits and not set(others) & set(edits), attribute
        # the driver (batches, shards, resume, early stop) decides where and whether, not what
        assert not {"varireal.edit.edit_set", "varireal.edit.rounds", "varireal.attributes.registry"} & set(edits)


def test_every_kind_of_item_has_a_matrix_column_and_a_root_that_exists():
    for kind, roots in ITEM_CODE.items():
        for root in roots:
            assert (REPO / (root.replace(".", "/") + ".py")).is_file(), (kind, root)
    assert re.search(r"\| change \|", (REPO / "docs/pipeline.md").read_text())
