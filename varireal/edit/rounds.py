"""Early stop: a shard's candidates are made in rounds, and a slot stops at its first passing candidate.

Round k edits candidate k of every slot of the shard that has no passing candidate yet (fixed
`batch_size` slices of those items, in edit-id order), then the judge answers for all of them
and the answers go into each candidate's record. Which items a round holds follows from the plan,
the answers and the threshold alone, so a shard has the same bytes for any process count and on
every rerun. A slot whose candidates all fail stays rejected: nothing is accepted by default.

The judge is passed in (the stage builds varireal.filter.early's), so editing never imports the filter.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence

from varireal.edit.plan import EditItem
from varireal.shards import Sample


class CandidateJudge(Protocol):
    key: str  # what answers and pass/fail depend on besides each image: questions, model, threshold

    def answers(self, samples: Sequence[Sample], known: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """edit id -> answer row (with its own key); rows of `known` whose key matches are kept, not asked."""
        ...

    def passed(self, record: Mapping[str, Any], answers: Mapping[str, Any]) -> bool: ...


def _slot(item: EditItem) -> tuple[str, int]:
    return item.source.id, item.slot


def edit_in_rounds(
    shard: Sequence[EditItem], done: Mapping[str, Sample], generate: Callable[[Sequence[EditItem]], list[Sample]],
    judge: CandidateJudge, batch_size: int,
) -> tuple[dict[str, Sample], dict[str, str]]:
    """(the samples made, each with its answers; edit id -> why not made, for the candidates left out).

    done: reusable samples by edit id (keys checked by the caller), taken instead of editing again;
    generate: edits one batch.
    """
    samples = dict(done)
    made: dict[str, Sample] = {}
    passed_at: dict[tuple[str, int], str] = {}
    for candidate in sorted({item.candidate for item in shard}):
        wanted = [item for item in shard if item.candidate == candidate and _slot(item) not in passed_at]
        for start in range(0, len(wanted), batch_size):
            batch = wanted[start : start + batch_size]
            if any(item.edit_id not in samples for item in batch):
                samples.update({sample.key: sample for sample in generate(batch)})
        edited = [samples[item.edit_id] for item in wanted if samples[item.edit_id].image is not None]
        known = {s.key: s.record["answers"] for s in edited if isinstance(s.record.get("answers"), dict)}
        answers = judge.answers(edited, known) if edited else {}
        for item in wanted:
            sample = samples[item.edit_id]
            record = {k: v for k, v in sample.record.items() if k != "answers"} | {"early_stop": judge.key}
            if item.edit_id in answers:
                record["answers"] = answers[item.edit_id]
                if judge.passed(record, answers[item.edit_id]):
                    passed_at[_slot(item)] = item.edit_id
            made[item.edit_id] = Sample(item.edit_id, sample.image, record)
    left_out = {item.edit_id: f"early stop: slot {item.slot} passed the filter with {passed_at[_slot(item)]}"
                for item in shard if item.edit_id not in made}
    return made, left_out
