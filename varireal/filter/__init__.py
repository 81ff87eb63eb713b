"""The MLLM filter: a vision-language model answers four yes/no questions about each edit.

- questions.py  the four questions, their templates and settings (never carrying the expected answer)
- judge.py      p(yes) from the model's own next-token probabilities, one batch at a time
- select.py     per slot the best candidate at or above the threshold; acceptance numbers
- run.py        the whole set: resume by shard, the synthetic shards, manifest.parquet, slots.csv

Score = fraction answered as expected (feasible: yes yes yes yes; infeasible: yes yes no no).
Nothing is accepted by default after failed tries: a slot without a passing candidate is rejected.
"""
