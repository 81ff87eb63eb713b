"""The MLLM filter: a vision-language model answers four yes/no questions about each edit.

- questions.py  the four questions, their templates and settings, and the prompt sent (with `show_answer`
                the reference's question dict, expected answer included)
- judge.py      the answers: p(yes) from the model's next-token probabilities, or parsed from a greedy reply
- select.py     which candidate each slot accepts: the best at or above the threshold, or the reference's
                cycle order with everything accepted after `accept_unfiltered_after` cycles; acceptance numbers
- early.py      the same judge and rule inside the edit stage (early stop)
- run.py        the whole set: resume by shard, the synthetic shards, manifest.parquet, slots.csv

Score = fraction answered as expected (feasible: yes yes yes yes; infeasible: yes yes no no).
Under our rule (`accept_unfiltered_after: null`) a slot without a passing candidate is rejected.
"""
