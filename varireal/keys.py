"""Item keys, made one way: what each kind of item depends on, hashed.

A persisted, resumable item (a mask, an edit candidate, the judge's answers, a tiny model build, a
training checkpoint) is stored with its key; a rerun reuses every item whose key is unchanged and
remakes the others. A key hashes the item's inputs (file sha256s), its resolved settings and model
fingerprints (values), and the fingerprint of the code that shapes it (varireal.fingerprint): for
each kind of item, the modules below and what they import, never a settings schema, the command
line or another stage's code. docs/pipeline.md#when-code-changes shows which change remakes what;
tests/test_item_keys.py holds them to it.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from varireal.fingerprint import code_fingerprint
from varireal.vocabulary import ATTRIBUTES

# What shapes each kind of item: the modules its fingerprint starts from.
MASK_CODE = ("varireal.masks",)  # the detector + SAM 2 step, and (lazily) their loaders
EDIT_CODE = ("varireal.edit.make",)  # + varireal.attributes.<attribute>: its method, the shared steps, the loaders
ANSWER_CODE = ("varireal.judge.answers", "varireal.models.vlm")  # the questions, the yes/no reading, the VLM loader
TINY_BUILD_CODE = ("varireal.models.roles",)  # every role's tiny builder (the registry imports them all)
TRAIN_CODE = ("varireal.finetune.train",)  # the loop, the model, data, augmentation, objective
# The CPU kernels and thread count every stage pins: an item made with others has other bytes.
KERNELS = ("varireal.cpu_pins",)
# Every kind of item and the modules its code fingerprint starts from (an edit: its attribute's module too).
ITEM_CODE: dict[str, tuple[str, ...]] = {
    "masks": (*MASK_CODE, *KERNELS),
    **{f"edits/{attribute}": (f"varireal.attributes.{attribute}", *EDIT_CODE, *KERNELS) for attribute in ATTRIBUTES},
    "answers": (*ANSWER_CODE, *KERNELS),
    "tiny builds": (*TINY_BUILD_CODE, *KERNELS),
    "checkpoints": (*TRAIN_CODE, *KERNELS),
}
# The judge's settings its answers depend on (the threshold and the accept rule re-select without re-asking);
# early stop's key adds the two that decide which candidates are made.
ANSWER_SETTINGS = ("answer_instruction", "show_answer", "answer_from", "max_new_tokens", "batch_size")
DECISION_SETTINGS = ("threshold", "accept_unfiltered_after")


def item_key(parts: dict[str, Any]) -> str:
    """sha256 of an item's parts as sorted JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FileHashes:
    """sha256 of input files, each read once per run (a real image serves many edits)."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path | None) -> str:
        if path is None:
            return "none"
        if path not in self._known:
            try:
                self._known[path] = file_sha256(path)
            except OSError as err:
                self._known[path] = f"unreadable: {type(err).__name__}"
        return self._known[path]


def judge_settings(settings: Any, *, decisions: bool = False) -> dict[str, Any]:
    """The filter settings the judge's answers (and, with decisions, early stop's choices) depend on."""
    names = ANSWER_SETTINGS + (DECISION_SETTINGS if decisions else ())
    return {name: getattr(settings, name) for name in names}


@cache
def item_code(kind: str) -> str:
    """The fingerprint of the code that makes one kind of item (a key of ITEM_CODE)."""
    if kind not in ITEM_CODE:
        raise ValueError(f"no item kind {kind!r}; kinds: {', '.join(ITEM_CODE)}")
    return code_fingerprint(*ITEM_CODE[kind])


def mask_code() -> str:
    return item_code("masks")


def edit_code(attribute: str) -> str:
    """An edit candidate's code: its attribute's module (not the other attributes') and the candidate maker."""
    return item_code(f"edits/{attribute}")


def answer_code() -> str:
    """The judge's code: shared by the edit stage's early stop and the filter stage, whose keys must agree."""
    return item_code("answers")


def tiny_build_code() -> str:
    return item_code("tiny builds")


def train_code() -> str:
    return item_code("checkpoints")
