"""The filter's judge inside the edit stage, for its early stop (varireal.edit.rounds).

It asks exactly what the filter stage would: the same four questions, in batches of
`filter.<profile>.batch_size`, under the same answer keys (image bytes, questions, prompt and
answer settings, batch size, model). The edit stage writes the answers into each candidate's
record; the filter stage finds them there, keys matching, and asks nothing again. Which candidate
a slot needs next comes from the filter's own rule (select.decide_source), so both stages accept
the same edits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from itertools import groupby
from pathlib import Path
from typing import Any

from varireal.attributes.item import EditItem
from varireal.judge.answers import answer_key, judge_shard
from varireal.judge.questions import Candidate, FilterParams, Questions, questions_for
from varireal.judge.rule import SlotDecision, Tried, decide_source
from varireal.judge.yes_no import YesNoJudge, answers_score
from varireal.keys import answer_code, item_key, judge_settings
from varireal.shards import Sample


class EarlyStopJudge:
    """Answers for candidates held in memory, and whether each passes the filter's threshold."""

    def __init__(
        self,
        load_vlm: Callable[[], tuple[Any, Any]],
        settings: FilterParams,
        models_key: str,
        prefix: str,
        questions: Questions | None = None,
    ) -> None:
        """questions: what is asked (questions.question_set, as the filter stage asks); None: the settings' templates."""
        if questions is None and settings.questions != "ours":
            raise ValueError(
                f"filter.questions={settings.questions!r}: early stop needs the reference's questions passed in"
            )
        # loaded at the first batch that must be asked: a rerun whose answers are recorded loads nothing
        self.judge = cache(lambda: YesNoJudge(*load_vlm()))
        self.settings, self.models_key, self.prefix = settings, models_key, prefix
        self.questions = questions or Questions(settings.templates())
        # What the answers and the pass/fail decisions depend on besides each image (and the plan).
        # the judge's code too: a fix there re-decides which candidates each slot needs (the images made are kept)
        self.key = item_key(
            {
                "templates": self.questions.templates,
                "value_form": self.questions.value_form,
                **({"class_names": dict(self.questions.class_names)} if self.questions.class_names else {}),
                **judge_settings(settings, decisions=True),
                "models": models_key,
                "code": answer_code(),
            }
        )

    def answers(self, samples: Sequence[Sample], known: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """edit id -> answer row (ANSWER_COLUMNS); rows of `known` whose key still matches are kept."""
        candidates = [self._candidate(sample) for sample in samples]
        questions = {c.edit_id: questions_for(c, self.questions, self.prefix) for c in candidates}
        images = {sample.key: sample.image or b"" for sample in samples}
        keys = {
            c.edit_id: answer_key(images[c.edit_id], questions[c.edit_id], self.settings, self.models_key)
            for c in candidates
        }
        table = judge_shard(self.judge, candidates, keys, known, questions, self.settings, images)
        return {row["edit_id"]: _plain(row) for row in table.to_dict("records")}

    def next_round(
        self, shard: Sequence[EditItem], made: Mapping[str, Mapping[str, Any]]
    ) -> tuple[list[EditItem], dict[tuple[str, int], str]]:
        """(the items to make next, in shard order; why each settled slot needs no more candidates).

        shard: the planned EditItems (whole real images); made: edit id -> record (with `answers` once judged).
        """
        wanted: list[EditItem] = []
        settled: dict[tuple[str, int], str] = {}
        for source_id, items in groupby(sorted(shard, key=_order), key=lambda item: item.source.id):
            slots = [list(group) for _, group in groupby(items, key=lambda item: item.slot)]
            tried = [
                [Tried(i.candidate, i.edit_id, i.edit_id in made, self._score(made.get(i.edit_id))) for i in slot]
                for slot in slots
            ]
            for slot, decision in zip(
                slots, decide_source(tried, self.settings.threshold, self.settings.accept_unfiltered_after)
            ):
                wanted += [item for item in slot if item.candidate == decision.next_candidate]
                if decision.status == "accepted":
                    settled[(source_id, slot[0].slot)] = _why(decision, self.settings.accept_unfiltered_after)
        order = {item.edit_id: index for index, item in enumerate(shard)}
        return sorted(wanted, key=lambda item: order[item.edit_id]), settled

    @staticmethod
    def _score(record: Mapping[str, Any] | None) -> float | None:
        answers = record.get("answers") if record else None
        return answers_score(answers, str(record["feasibility"])) if isinstance(answers, dict) and record else None

    @staticmethod
    def _candidate(sample: Sample) -> Candidate:
        record = sample.record
        return Candidate(
            sample.key,
            Path(""),
            -1,
            len(sample.image or b""),
            str(record["class_name"]),
            str(record["attribute"]),
            str(record["feasibility"]),
            str(record["value"]),
            str(record.get("description") or ""),
        )


def _order(item: EditItem) -> tuple[str, int, int]:
    return item.source.id, item.slot, item.candidate


def _why(decision: SlotDecision, accept_after: int | None) -> str:
    if decision.accepted_by == "after_tries":
        return f"accepted {decision.edit_id} after {accept_after} filtered cycles of its real image"
    return f"passed the filter with {decision.edit_id}"


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready row: NaN (no answer, an unreadable image) becomes None."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
