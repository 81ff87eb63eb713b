"""A candidate's answers: the key they are stored under and asking them in fixed batches.

The filter stage and the edit stage's early stop both ask through `judge_shard`, under the same
`answer_key`, so answers recorded by one are found by the other and never asked twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from varireal.judge.questions import QUESTIONS, Candidate, FilterParams
from varireal.judge.yes_no import YesNoJudge, judge_batch
from varireal.keys import answer_code, item_key, judge_settings

ANSWER_COLUMNS = [
    "edit_id",
    "key",
    "status",
    "reason",
    *[f"{q}_{part}" for q in QUESTIONS for part in ("p_yes", "reply", "answer")],
]


def answer_key(image: bytes, questions: Sequence[str], settings: FilterParams, models_key: str) -> str:
    """What a candidate's answers depend on (the threshold and the accept rule are left out: they
    re-select without re-asking)."""
    return item_key(
        {
            "image": hashlib.sha256(image).hexdigest(),
            "questions": list(questions),
            **judge_settings(settings),
            "models": models_key,
            "code": answer_code(),
        }
    )


def judge_shard(
    judge: Callable[[], YesNoJudge],
    candidates: Sequence[Candidate],
    keys: dict[str, str],
    done: Mapping[str, dict[str, Any]],
    questions: dict[str, list[str]],
    settings: FilterParams,
    images_in_memory: Mapping[str, bytes] | None = None,
) -> pd.DataFrame:
    """Answers for candidates in fixed batches: rows of `done` whose key still matches are kept, the rest asked.

    judge: called for the model only when some batch has to be asked (a rerun whose answers are
    all recorded loads nothing).
    """
    rows = {c.edit_id: done[c.edit_id] for c in candidates if done.get(c.edit_id, {}).get("key") == keys[c.edit_id]}
    for start in range(0, len(candidates), settings.batch_size):
        batch = candidates[start : start + settings.batch_size]
        if all(c.edit_id in rows for c in batch):
            continue
        for record in judge_batch(judge(), batch, questions, settings, images_in_memory):
            rows[record["edit_id"]] = {**record, "key": keys[record["edit_id"]]}
    return pd.DataFrame([rows[c.edit_id] for c in candidates], columns=ANSWER_COLUMNS)
