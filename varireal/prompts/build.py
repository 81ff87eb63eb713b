"""Build the feasible/infeasible value lists of one dataset, from a curated file or an LLM."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from varireal.attributes.registry import ATTRIBUTE_METHODS
from varireal.colors import ColorTable, UnknownColorError, resolve_color
from varireal.io import write_json
from varireal.prompts.curated import curated_path, load_curated_lists
from varireal.prompts.llm import TextGenerator, build_messages, generate_text, generate_value_list
from varireal.prompts.reference import (
    LIST_ROLES,
    FetchedFile,
    Transfer,
    fetch_reference,
    read_color_table,
    reference_class_names,
    reference_lists,
    reference_questions,
)
from varireal.prompts.schema import FORMAT_VERSION, PromptsDocument, list_key, read_prompts
from varireal.settings.prompts import QUESTION_ROLES, PromptsParams
from varireal.vocabulary import FEASIBILITIES

__all__ = ["build_attribute_lists", "read_prompts", "write_prompts"]

DOWNLOADS = Path("data/downloads")  # fetch's folder for verified downloads; no stage declares it as an output
DEFAULT_TRANSFER = Transfer(timeout_s=60, retries=5, retry_wait_s=5)  # fetch's defaults


def build_attribute_lists(
    dataset: str,
    class_names: list[str],
    params: PromptsParams,
    llm: tuple[Any, Any] | None,
    llm_record: dict,
    generate: TextGenerator = generate_text,
    downloads: Path = DOWNLOADS,
    transfer: Transfer = DEFAULT_TRANSFER,
) -> dict:
    """The prompts document for `dataset` (see PromptsDocument), ready for write_prompts.

    prompts.source picks the lists: the reference's files (downloaded to `downloads`, verified,
    parsed as literals), a curated file, or `generate(llm, messages, seed, params)`, which answers
    each list (background and texture once per dataset, color once per class, feasible before
    infeasible; PromptGenerationError when a list gets no valid answer in max_attempts tries).
    Every colour value gets its RGB (prompts.color_table, then CSS4, then XKCD names) or the
    stage fails naming it.
    """
    _check_class_names(dataset, class_names)
    roles = (
        (LIST_ROLES if params.source == "reference" else ())
        + (("color_table",) if params.color_table == "reference" else ())
        + (tuple(QUESTION_ROLES.values()) if params.reference is not None and params.reference.has_questions() else ())
        + (("class_names",) if params.reference is not None and "class_names" in params.reference.files else ())
    )
    fetched = fetch_reference(params.reference, roles, downloads, transfer) if roles else {}  # type: ignore[arg-type]
    table, table_record = _color_table(params, fetched)
    fields: dict[str, Any] = {
        "curated_file": None,
        "llm": None,
        "attempts": [],
        "categories": {},
        "reference": None,
        "questions": reference_questions(fetched) if "back_gen" in fetched else None,
        "class_names": reference_class_names(
            dataset, _reference_key(params, dataset), class_names, fetched["class_names"]
        )
        if "class_names" in fetched and dataset in params.reference.datasets  # type: ignore[union-attr]
        else None,
    }
    if params.source == "reference":
        lists, fields["categories"] = reference_lists(dataset, _reference_key(params, dataset), class_names, fetched)
    elif params.source == "curated":
        path = curated_path(params.curated_file, dataset)  # type: ignore[arg-type]
        lists = load_curated_lists(path, dataset, class_names, params)
        fields["curated_file"] = path
    elif llm is None:
        raise ValueError(
            f"dataset {dataset!r}: prompts.source is 'llm' but no LLM was given; "
            "set prompts.source to reference or curated, or configure the prompts LLM"
        )
    else:
        lists = _lists_from_llm(dataset, class_names, params, llm, generate, fields["attempts"], table)
        fields["llm"] = llm_record
    if fetched:
        reference = params.reference
        fields["reference"] = {
            "url": reference.url,
            "commit": reference.commit,  # type: ignore[union-attr]
            "files": {role: got.record for role, got in fetched.items()},
        }
    document = PromptsDocument(
        format_version=FORMAT_VERSION,
        dataset=dataset,
        source=params.source,
        lists=_with_colors(lists, table, _table_source(params), dataset),
        color_table=table_record,
        value_draw=params.value_draw,
        **fields,
    )
    return document.model_dump(mode="json", exclude_none=False)


def _table_source(params: PromptsParams) -> str:
    return "reference" if params.color_table == "reference" else "file"


def _reference_key(params: PromptsParams, dataset: str) -> str:
    datasets = params.reference.datasets  # type: ignore[union-attr]
    if dataset not in datasets:
        raise ValueError(
            f"prompts.reference.datasets has no key for dataset {dataset!r} (it maps {', '.join(sorted(datasets)) or 'none'}); "
            "the reference has lists for oxford_pets, fgvc_aircraft and cars only"
        )
    return datasets[dataset]


def _color_table(params: PromptsParams, fetched: dict[str, FetchedFile]) -> tuple[ColorTable | None, dict | None]:
    """prompts.color_table read as literals: the reference's downloaded file, or a local file in its format."""
    if params.color_table is None:
        return None, None
    if params.color_table == "reference":
        got = fetched["color_table"]
        table = read_color_table(got.local, f"{got.path} ({got.url})")
        return table, {"source": "reference", **got.record, "names": len(table)}
    path = Path(params.color_table)
    if not path.is_file():
        raise ValueError(
            f"prompts.color_table: {path} does not exist (a file in the format of the reference's COLORS, or 'reference', or null)"
        )
    table = read_color_table(path, str(path))
    return table, {
        "source": "file",
        "path": path.as_posix(),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "names": len(table),
    }


def _with_colors(lists: dict[str, Any], table: ColorTable | None, table_source: str, dataset: str) -> dict[str, Any]:
    """Every entry of an attribute whose values are colours with its `rgb` and `rgb_source`; all unknown
    names are reported at once."""
    errors = []
    for attribute in (name for name, method in ATTRIBUTE_METHODS.items() if method.colors and name in lists):
        for key, entry in _entries(attribute, lists[attribute]):
            try:
                rgb, source = resolve_color(entry["value"], table, table_source)
            except UnknownColorError as err:
                errors.append(f"list {key!r}: {err}")
                continue
            entry.update(rgb=list(rgb), rgb_source=source)
    if errors:
        raise UnknownColorError(
            f"dataset {dataset!r}: {len(errors)} colour value(s) have no RGB (prompts.color_table, then "
            "matplotlib's CSS4 and XKCD names; never an invented colour):\n  " + "\n  ".join(errors)
        )
    return lists


def _entries(attribute: str, lists: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(list key, entry) of every value of one attribute's lists, whatever their scope."""
    pairs = list(lists.items()) if ATTRIBUTE_METHODS[attribute].lists == "class" else [(None, lists)]
    found = []
    for name, pair in pairs:
        for feasibility, node in pair.items():
            groups = node.items() if isinstance(node, dict) else [(name, node)]
            found += [
                (list_key(attribute, feasibility, group), entry) for group, entries in groups for entry in entries
            ]
    return found


def _lists_from_llm(
    dataset: str,
    class_names: list[str],
    params: PromptsParams,
    llm: Any,
    generate: TextGenerator,
    attempts: list[dict],
    table: ColorTable | None,
) -> dict[str, Any]:
    def pair(attribute: str, class_name: str | None) -> dict:
        result: dict[str, list[dict[str, str]]] = {}
        for feasibility in FEASIBILITIES:
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
                value_check=_color_check(table) if ATTRIBUTE_METHODS[attribute].colors else None,
            )
        return result

    return {
        name: {class_name: pair(name, class_name) for class_name in class_names}
        if method.lists == "class"
        else pair(name, None)
        for name, method in ATTRIBUTE_METHODS.items()
    }


def _color_check(table: ColorTable | None) -> Callable[[str], str | None]:
    """An answer naming a colour nothing can resolve is invalid, so the LLM is asked again."""

    def check(value: str) -> str | None:
        try:
            resolve_color(value, table)
        except UnknownColorError as err:
            return str(err)
        return None

    return check


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
