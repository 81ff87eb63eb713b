"""A copy of the project's code to change, and the item fingerprints it gives (varireal.keys.ITEM_CODE)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from varireal import codebase, fingerprint
from varireal.keys import ITEM_CODE

REPO = Path(__file__).resolve().parents[1]


class CodeCopy:
    """varireal/ and stages/ in a folder of their own, read by varireal.codebase instead of the checkout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for package in codebase.PACKAGES:
            shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))

    def replace(self, path: str, old: str, new: str, count: int = 1) -> None:
        """Change one file; the text to change must be there (a test that changes nothing proves nothing)."""
        file = self.root / path
        text = file.read_text()
        assert old in text, f"{path}: {old!r} not found"
        file.write_text(text.replace(old, new, count))

    def move(self, old: str, new: str) -> None:
        """Move a module (dotted names) and rewrite every import of it: nothing else changes."""
        source = self.root.joinpath(*old.split(".")).with_suffix(".py")
        target = self.root.joinpath(*new.split(".")).with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        old_package, old_name = old.rpartition(".")[::2]
        new_package, new_name = new.rpartition(".")[::2]
        for path in self.root.rglob("*.py"):
            text = path.read_text()
            changed = re.sub(rf"\b{re.escape(old)}\b", new, text)
            changed = changed.replace(
                f"from {old_package} import {old_name} as", f"from {new_package} import {new_name} as"
            )
            if changed != text:
                path.write_text(changed)

    def fingerprints(self) -> dict[str, str]:
        """Every kind of item's code fingerprint, as this copy's code gives it."""
        fingerprint.clear_caches()
        return {kind: fingerprint.code_fingerprint(*roots) for kind, roots in ITEM_CODE.items()}


@pytest.fixture()
def code(tmp_path, monkeypatch) -> CodeCopy:
    copy = CodeCopy(tmp_path / "code")
    monkeypatch.setattr(codebase, "ROOT", copy.root)
    yield copy
    fingerprint.clear_caches()
