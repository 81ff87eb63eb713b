"""Attribute prompts: feasible and infeasible values for background, texture and color.

For each dataset the prompts stage needs, per attribute, a list of values that could exist
in reality (feasible) and a list that could not (infeasible); color lists are per class.
They come (`prompts.source`) from the reference's frozen lists, downloaded at a pinned commit
and read as literals (reference.py), from a hand-curated YAML file (`prompts.curated_file`), or
from a chat LLM asked for structured JSON, validated and retried with per-attempt seeds; every
LLM answer is recorded in the written document. Every colour value gets its RGB here
(`prompts.color_table`, then CSS4 and XKCD names), so an unknown colour fails before any edit.
"""
