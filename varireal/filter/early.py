"""The filter's judge inside the edit stage, for its early stop (varireal.edit.rounds).

It asks exactly what the filter stage would: the same four questions, in batches of
`filter.<profile>.batch_size`, under the same answer keys (image bytes, questions, instruction,
batch size, model). The edit stage writes the answers into each candidate's record; the filter
stage finds them there, keys matching, and asks nothing again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from functools import cache
from typing import Any, Callable, Mapping, Sequence

from varireal.filter.judge import YesNoJudge, answers_score
from varireal.filter.questions import Candidate, FilterParams, questions_for
from varireal.filter.run import answer_key, judge_shard
from varireal.shards import Sample


class EarlyStopJudge:
    """Answers for candidates held in memory, and whether each passes the filter's threshold."""

    def __init__(self, load_vlm: Callable[[], tuple[Any, Any]], settings: FilterParams, models_key: str, prefix: str) -> None:
        # loaded at the first batch that must be asked: a rerun whose answers are recorded loads nothing
        self.judge = cache(lambda: YesNoJudge(*load_vlm()))
        self.settings, self.models_key, self.prefix = settings, models_key, prefix
        # What the answers and the pass/fail decisions depend on besides each image (and the plan).
        self.key = hashlib.sha256(json.dumps({
            "templates": settings.templates(), "instruction": settings.answer_instruction, "batch_size": settings.batch_size,
            "threshold": settings.threshold, "models": models_key,
        }, sort_keys=True).encode()).hexdigest()

    def answers(self, samples: Sequence[Sample], known: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """edit id -> answer row (ANSWER_COLUMNS); rows of `known` whose key still matches are kept."""
        candidates = [self._candidate(sample) for sample in samples]
        questions = {c.edit_id: questions_for(c, self.settings.templates(), self.prefix) for c in candidates}
        images = {sample.key: sample.image or b"" for sample in samples}
        keys = {c.edit_id: answer_key(images[c.edit_id], questions[c.edit_id], self.settings, self.models_key) for c in candidates}
        table = judge_shard(self.judge, candidates, keys, known, questions, self.settings, images)
        return {row["edit_id"]: _plain(row) for row in table.to_dict("records")}

    def passed(self, record: Mapping[str, Any], answers: Mapping[str, Any]) -> bool:
        scored = answers_score(answers, str(record["feasibility"]))
        return scored is not None and scored >= self.settings.threshold

    @staticmethod
    def _candidate(sample: Sample) -> Candidate:
        record = sample.record
        return Candidate(sample.key, Path(""), -1, len(sample.image or b""), str(record["class_name"]),
                         str(record["attribute"]), str(record["feasibility"]), str(record["value"]))


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready row: NaN (no answer, an unreadable image) becomes None."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
