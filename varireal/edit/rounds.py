"""Early stop: a shard's candidates are made in rounds, and a slot stops once the filter's rule settles it.

Each round the judge names the candidates still needed (with the filter's own rule: the next
candidate of every slot without a passing one, or under `accept_unfiltered_after` the reference's
cycle order per real image); they are edited in fixed `batch_size` slices, in edit-id order, then
the judge answers for all of them and the answers go into each candidate's record. Which items a
round holds follows from the plan, the answers and the filter's settings alone, so a shard has the
same bytes for any process count and on every rerun. Under our rule a slot whose candidates all fail
stays rejected: nothing is accepted by default.

The judge is passed in (the stage builds varireal.judge.early_stop's), so editing never imports the filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from varireal.attributes.item import EditItem
from varireal.shards import Sample


class CandidateJudge(Protocol):
    key: str  # what answers and decisions depend on besides each image: questions, model, threshold, rule

    def answers(self, samples: Sequence[Sample], known: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """edit id -> answer row (with its own key); rows of `known` whose key matches are kept, not asked."""
        ...

    def next_round(
        self, shard: Sequence[EditItem], made: Mapping[str, Mapping[str, Any]]
    ) -> tuple[list[EditItem], dict[tuple[str, int], str]]:
        """(items to make next, none of them in `made`; (source id, slot) -> why a settled slot needs no more)."""
        ...


def edit_in_rounds(
    shard: Sequence[EditItem],
    done: Mapping[str, Sample],
    generate: Callable[[Sequence[EditItem]], list[Sample]],
    judge: CandidateJudge,
    batch_size: int,
) -> tuple[dict[str, Sample], dict[str, str]]:
    """(the samples made, each with its answers; edit id -> why not made, for the candidates left out).

    done: reusable samples by edit id (keys checked by the caller), taken instead of editing again;
    generate: edits one batch.
    """
    samples = dict(done)
    made: dict[str, Sample] = {}
    settled: dict[tuple[str, int], str] = {}
    while True:
        wanted, settled = judge.next_round(shard, {key: sample.record for key, sample in made.items()})
        if not wanted:
            break
        if any(item.edit_id in made for item in wanted):
            raise RuntimeError(f"early stop asked again for {[i.edit_id for i in wanted if i.edit_id in made][:3]}")
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
            made[item.edit_id] = Sample(item.edit_id, sample.image, record)
    left_out = {
        item.edit_id: f"early stop: slot {item.slot} {settled[(item.source.id, item.slot)]}"
        for item in shard
        if item.edit_id not in made
    }
    return made, left_out
