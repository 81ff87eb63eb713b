"""The MLLM filter: a vision-language model answers four yes/no questions about each edit.

- questions.py  the four questions, their templates and settings (never carrying the expected answer)
- judge.py      p(yes) from the model's own next-token probabilities, one batch at a time
- select.py     per slot the best candidate at or above the threshold; acceptance numbers
- run.py        the whole set: resume by shard, the synthetic shards, manifest.parquet, slots.csv

Score = fraction answered as expected (feasible: yes yes yes yes; infeasible: yes yes no no).
Nothing is accepted by default after failed tries: a slot without a passing candidate is rejected.
"""

from varireal.filter.judge import YesNoJudge, answer, answer_token_ids, judge_batch, score
from varireal.filter.questions import (
    EXPECTED, QUESTIONS, Candidate, FilterParams, chat_prompt, check_template, expected_answers, questions_for,
)
from varireal.filter.run import FILTER_COLUMNS, acceptance, accepted_edits, filter_set, read_edit_manifest
from varireal.filter.select import SLOT_COLUMNS, select_slots, summarize

__all__ = [
    "EXPECTED", "FILTER_COLUMNS", "QUESTIONS", "SLOT_COLUMNS", "Candidate", "FilterParams", "YesNoJudge", "acceptance",
    "accepted_edits", "answer", "answer_token_ids", "chat_prompt", "check_template", "expected_answers", "filter_set",
    "judge_batch", "questions_for", "read_edit_manifest", "score", "select_slots", "summarize",
]
