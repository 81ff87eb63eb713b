"""Attribute prompts: feasible and infeasible values for background, texture and color.

For each dataset the prompts stage needs, per attribute, a list of values that could exist
in reality (feasible) and a list that could not (infeasible); color lists are per class.
They come from a hand-curated YAML file (`prompts.curated_file`) or from a chat LLM asked
for structured JSON, validated and retried with per-attempt seeds; every LLM answer is
recorded in the written document.
"""
