"""Attribute prompts: feasible and infeasible values for background, texture and color.

For each dataset the prompts stage needs, per attribute, a list of values that could exist
in reality (feasible) and a list that could not (infeasible); color lists are per class.
They come from a hand-curated YAML file (`prompts.curated_file`) or from a chat LLM asked
for structured JSON, validated and retried with per-attempt seeds; every LLM answer is
recorded in the written document.
"""

from varireal.prompts.build import build_attribute_lists, read_prompts, write_prompts
from varireal.prompts.curated import CuratedFileError, load_curated_lists
from varireal.prompts.llm import PromptGenerationError, TextGenerator, build_messages, generate_text
from varireal.prompts.schema import ATTRIBUTES, FEASIBILITIES, PromptsDocument, PromptsParams, list_key
from varireal.prompts.validate import check_answer, check_value_list, extract_json_object, normalize_value

__all__ = [
    "ATTRIBUTES",
    "FEASIBILITIES",
    "CuratedFileError",
    "PromptGenerationError",
    "PromptsDocument",
    "PromptsParams",
    "TextGenerator",
    "build_attribute_lists",
    "build_messages",
    "check_answer",
    "check_value_list",
    "extract_json_object",
    "generate_text",
    "list_key",
    "load_curated_lists",
    "normalize_value",
    "read_prompts",
    "write_prompts",
]
