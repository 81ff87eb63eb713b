"""The judge the edit stage (early stop) and the filter stage share: a VLM answers four yes/no questions per edit.

- questions.py   the four questions, their templates and settings (`filter` params), and the prompt sent (with
                 `show_answer` the reference's question dict, expected answer included)
- yes_no.py      the answers: p(yes) from the model's next-token probabilities, or parsed from a greedy reply
- answers.py     the key a candidate's answers are stored under, and asking them in fixed batches
- rule.py        which candidate each slot accepts: the best at or above the threshold, or the reference's
                 cycle order with everything accepted after `accept_unfiltered_after` cycles; acceptance numbers
- early_stop.py  the judge inside the edit stage: answers in memory and the next round's candidates
                 (varireal.edit.rounds runs the rounds; varireal.filter runs the whole set)

Score = fraction answered as expected (feasible: yes yes yes yes; infeasible: yes yes no no).
Under our rule (`accept_unfiltered_after: null`) a slot without a passing candidate is rejected.
"""
