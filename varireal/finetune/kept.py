"""Which weights a training run keeps, and the record of that choice that travels with the adapter.

`protocol.<profile>` decides the choice:

    protocol     checkpoint  kept weights
    paper        best_test   the best test top-1 of the evaluations every eval_every steps and at
                             the end; a later one replaces them only with a strictly higher top-1,
                             as the reference did (Finetune/classify/main.py:94,208-222,352-361). Optimistic:
                             the number reported is the maximum of many looks at the test split.
    final        final       the weights after the last step: nothing chosen
    heldout_val  best_val    the best val top-1, then the lower val loss, then the earlier step

train writes `kept.json` beside the adapter (the choice, a sentence saying it, the step and the
scores of the kept weights); evaluate copies `checkpoint` and `checkpoint_note` into
reports/eval/metrics.json, so every number carries how its weights were chosen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from varireal.io import write_json
from varireal.vocabulary import Protocol

Choice = Literal["best_test", "final", "best_val"]
CHOICES: dict[Protocol, Choice] = {"paper": "best_test", "final": "final", "heldout_val": "best_val"}
NOTES: dict[Choice, str] = {
    "best_test": "chosen on the test split, as the paper did: optimistic",
    "final": "the final weights: nothing chosen",
    "best_val": "chosen on held-out val; the test split unseen until evaluation",
}
# The split each choice is made on (final: none).
CHOSEN_ON: dict[Choice, str | None] = {"best_test": "test", "final": None, "best_val": "val"}
KEPT_FILE = "kept.json"


class KeptRecordError(ValueError):
    """kept.json beside an adapter is missing or not the train stage's record."""


@dataclass(frozen=True)
class Evaluation:
    step: int  # optimizer steps done when the split was scored
    top1: float
    loss: float
    split: str = "val"  # val | test

    def better_than(self, other: Evaluation | None) -> bool:
        """Whether these weights replace `other`'s: on test the reference's rule, a strictly higher top-1;
        on val a higher top-1, then a lower loss (equal: the earlier weights stay)."""
        if other is None:
            return True
        if self.split == "test":
            return self.top1 > other.top1
        return (self.top1, -self.loss) > (other.top1, -other.loss)


def kept_record(choice: Choice, kept: Evaluation | None, total_steps: int) -> dict:
    """What train records (kept.json, reports/train/metrics.json): choice_record and, under `kept`, the
    kept weights' step and, when a split was scored on them, its top-1 and loss (val_top1, test_top1, ...)."""
    scores: dict[str, float | int] = {"step": kept.step if kept else total_steps}
    if kept is not None:
        scores.update({f"{kept.split}_top1": kept.top1, f"{kept.split}_loss": kept.loss})
    return {**choice_record(choice), "kept": scores}


def choice_record(choice: Choice) -> dict[str, str]:
    """{"checkpoint": choice, "checkpoint_note": the sentence reports print with it}."""
    return {"checkpoint": choice, "checkpoint_note": NOTES[choice]}


def write_kept(directory: str | Path, record: dict) -> Path:
    """kept_record into kept.json in `directory`, beside the adapter (sorted keys: the same record, the same bytes)."""
    path = Path(directory) / KEPT_FILE
    write_json(path, record)
    return path


def read_choice(adapter: str | Path) -> dict[str, str]:
    """choice_record of the run that wrote `adapter`, from kept.json beside it."""
    path = Path(adapter).with_name(KEPT_FILE)
    if not path.is_file():
        raise KeptRecordError(f"{path}: not found; the train stage writes it beside {Path(adapter).name} (rerun train)")
    try:
        choice = json.loads(path.read_text(encoding="utf-8"))["checkpoint"]
    except (ValueError, KeyError, TypeError) as err:
        raise KeptRecordError(f"{path}: not a record of the kept checkpoint ({type(err).__name__}: {err})") from None
    if choice not in NOTES:
        raise KeptRecordError(f"{path}: checkpoint={choice!r}; expected one of {', '.join(NOTES)}")
    return choice_record(choice)
