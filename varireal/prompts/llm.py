"""Ask a chat LLM for one value list, validate the answer, retry with a new seed."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from varireal.attributes.registry import attribute_method
from varireal.prompts.errors import PromptGenerationError
from varireal.prompts.validate import ValueListCheck, check_answer
from varireal.seeding import item_seed
from varireal.settings.prompts import PromptsParams

Messages = list[dict[str, str]]

_MAX_CLASSES_SHOWN = 20


class TextGenerator(Protocol):
    """Turns chat messages into the model's answer; `generate_text` is the real one."""

    def __call__(self, llm: Any, messages: Messages, seed: int, params: PromptsParams) -> str: ...


def build_messages(
    *,
    dataset: str,
    class_names: Sequence[str],
    attribute: str,
    feasibility: str,
    class_name: str | None,
    params: PromptsParams,
    feasible_values: Sequence[str] = (),
) -> Messages:
    """One user message (system roles are not accepted by every chat template)."""
    guide = attribute_method(attribute).guide  # what the attribute's module tells the LLM
    context = params.dataset_context.get(dataset)
    lines = [f"Dataset: {dataset}" + (f" ({context})" if context else "") + "."]
    if class_name is None:
        target = "such objects"
        shown = ", ".join(class_names[:_MAX_CLASSES_SHOWN])
        more = len(class_names) - _MAX_CLASSES_SHOWN
        lines.append(f"Object classes: {shown}" + (f", and {more} more" if more > 0 else "") + ".")
    else:
        target = f"a real {class_name}"
        lines.append(f"Object class: {class_name}.")
    lines += [
        "",
        f"Attribute: {attribute}, meaning {guide.what}.",
        f"Feasible {attribute}: {guide.feasible.format(target=target)}.",
        f"Infeasible {attribute}: {guide.infeasible.format(target=target)}.",
        "",
        f"Write between {params.min_values} and {params.max_values} different {feasibility.upper()} {attribute} values"
        + (f" for {class_name}." if class_name is not None else "."),
        f"Each value is {guide.value}; each description is one short sentence of what it looks like.",
    ]
    if feasible_values:
        lines.append(f"Do not use any of these feasible values: {'; '.join(feasible_values)}.")
    lines += [
        "Answer with one JSON object and nothing else, in exactly this form:",
        json.dumps({"values": [{"value": "...", "description": "..."}]}),
    ]
    return [{"role": "user", "content": "\n".join(lines)}]


def generate_text(llm: tuple[Any, Any], messages: Messages, seed: int, params: PromptsParams) -> str:
    """Sample one answer from a transformers (model, tokenizer) pair, seeded for this item."""
    model, tokenizer = llm
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(model.device)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(seed)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            max_new_tokens=params.max_new_tokens,
            pad_token_id=pad_token_id,
        )
    answer_ids = output[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(answer_ids, skip_special_tokens=True)


def generate_value_list(
    *,
    llm: Any,
    generate: TextGenerator,
    messages: Messages,
    dataset: str,
    key: str,
    params: PromptsParams,
    forbidden: Sequence[str],
    attempts: list[dict],
    value_check: Callable[[str], str | None] | None = None,
) -> list[dict[str, str]]:
    """Up to max_attempts answers, each seeded by (seed, dataset, list key, attempt).

    Every answer is appended to `attempts`; the first valid one is returned. `value_check(value)`
    returns what is wrong with one value (a colour no table names), or None.
    """
    errors: list[str] = []
    for attempt in range(1, params.max_attempts + 1):
        seed = item_seed(params.seed, dataset, key, attempt)
        raw = generate(llm, messages, seed, params)
        check = check_answer(raw, min_values=params.min_values, max_values=params.max_values, forbidden=forbidden)
        if value_check is not None:
            problems = [problem for entry in check.values if (problem := value_check(entry["value"]))]
            check = ValueListCheck(check.values, check.errors + problems)
        attempts.append(
            {"list": key, "attempt": attempt, "seed": seed, "valid": check.valid, "errors": check.errors, "raw": raw}
        )
        if check.valid:
            return check.values
        errors = check.errors
    shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
    raise PromptGenerationError(
        f"dataset {dataset!r}: no valid answer for list {key!r} after {params.max_attempts} attempts "
        f"(prompts.max_attempts). Last validation errors: {shown}. "
        "Try a stronger LLM or more attempts, or write the lists by hand and set prompts.curated_file "
        "(format: varireal/curated/demo.yaml).",
        attempts,
    )
