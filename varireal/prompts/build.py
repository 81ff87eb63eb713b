"""Build the feasible/infeasible value lists of one dataset, from a curated file or an LLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from varireal.io import write_json
from varireal.prompts.curated import curated_path, load_curated_lists
from varireal.prompts.llm import TextGenerator, build_messages, generate_text, generate_value_list
from varireal.prompts.schema import FORMAT_VERSION, AttributeLists, PromptsDocument, PromptsParams, list_key


def build_attribute_lists(
    dataset: str,
    class_names: list[str],
    params: PromptsParams,
    llm: tuple[Any, Any] | None,
    llm_record: dict,
    generate: TextGenerator = generate_text,
) -> dict:
    """The prompts document for `dataset` (see PromptsDocument), ready for write_prompts.

    A curated file wins over `llm`. Otherwise `generate(llm, messages, seed, params)`
    answers each list: background and texture once per dataset, color once per class,
    feasible before infeasible. Raises PromptGenerationError when a list gets no valid
    answer in max_attempts tries.
    """
    _check_class_names(dataset, class_names)
    if params.curated_file is not None:
        path = curated_path(params.curated_file, dataset)
        lists = load_curated_lists(path, dataset, class_names, params)
        document = PromptsDocument(
            format_version=FORMAT_VERSION,
            dataset=dataset,
            source="curated",
            curated_file=path,
            llm=None,
            lists=lists,
            attempts=[],
        )
    elif llm is None:
        raise ValueError(
            f"dataset {dataset!r}: prompts.curated_file is null and no LLM was given; "
            "set prompts.curated_file or configure the prompts LLM"
        )
    else:
        attempts: list[dict] = []
        lists = _lists_from_llm(dataset, class_names, params, llm, generate, attempts)
        document = PromptsDocument(
            format_version=FORMAT_VERSION,
            dataset=dataset,
            source="llm",
            curated_file=None,
            llm=llm_record,
            lists=lists,
            attempts=attempts,
        )
    return document.model_dump(mode="json")


def _lists_from_llm(
    dataset: str,
    class_names: list[str],
    params: PromptsParams,
    llm: Any,
    generate: TextGenerator,
    attempts: list[dict],
) -> AttributeLists:
    def pair(attribute: str, class_name: str | None) -> dict:
        result: dict[str, list[dict[str, str]]] = {}
        for feasibility in ("feasible", "infeasible"):
            feasible_values = [entry["value"] for entry in result.get("feasible", [])]
            messages = build_messages(
                dataset=dataset,
                class_names=class_names,
                attribute=attribute,
                feasibility=feasibility,
                class_name=class_name,
                params=params,
                feasible_values=feasible_values,
            )
            result[feasibility] = generate_value_list(
                llm=llm,
                generate=generate,
                messages=messages,
                dataset=dataset,
                key=list_key(attribute, feasibility, class_name),
                params=params,
                forbidden=feasible_values,
                attempts=attempts,
            )
        return result

    return AttributeLists.model_validate(
        {
            "background": pair("background", None),
            "texture": pair("texture", None),
            "color": {name: pair("color", name) for name in class_names},
        }
    )


def _check_class_names(dataset: str, class_names: list[str]) -> None:
    if not class_names:
        raise ValueError(f"dataset {dataset!r}: no class names given")
    bad = [name for name in class_names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(f"dataset {dataset!r}: class names must be non-empty strings; got {bad!r}")
    duplicates = sorted({name for name in class_names if class_names.count(name) > 1})
    if duplicates:
        raise ValueError(f"dataset {dataset!r}: class names occur more than once: {duplicates!r}")


def write_prompts(path: str | Path, document: dict) -> None:
    """Write atomically as UTF-8 JSON with sorted keys: equal documents give equal bytes."""
    PromptsDocument.model_validate(document)
    write_json(path, document)


def read_prompts(path: str | Path) -> PromptsDocument:
    """Read a prompts document back, validated (for the edit stages)."""
    return PromptsDocument.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
