"""Value lists written by hand: a YAML file with the same `lists` layout as the document."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from varireal.attributes.registry import ATTRIBUTE_METHODS
from varireal.io import DuplicateKeyError, read_yaml
from varireal.prompts.schema import FORMAT_VERSION, list_key
from varireal.prompts.validate import check_value_list
from varireal.settings.prompts import PromptsParams
from varireal.vocabulary import FEASIBILITIES

_TOP_KEYS = ("format_version", "dataset", "lists")


class CuratedFileError(ValueError):
    """A curated file that cannot be used; the message names the file and every problem."""


def curated_path(curated_file: str, dataset: str) -> str:
    """The file for this dataset: "{dataset}" in the configured path is replaced."""
    return curated_file.replace("{dataset}", dataset)


def load_curated_lists(path: str | Path, dataset: str, class_names: list[str], params: PromptsParams) -> dict[str, Any]:
    """Read and validate the lists for `dataset`, one entry per attribute (varireal.attributes), as its scope
    says: one pair for the dataset, or one per class (lists of classes not in the dataset are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise CuratedFileError(
            f"prompts.curated_file: {path} does not exist (relative paths start at the repository root)"
        )
    try:
        data = read_yaml(path.read_text(encoding="utf-8"), path)
    except (yaml.YAMLError, DuplicateKeyError) as err:
        raise CuratedFileError(f"{path}: not valid YAML: {err}") from err

    lists = _check_layout(path, data, dataset, class_names)
    errors: list[str] = []
    checked: dict[str, Any] = {}
    for attribute, method in ATTRIBUTE_METHODS.items():
        if method.lists == "class":
            checked[attribute] = {
                name: _check_pair(lists[attribute][name], attribute, name, params, errors) for name in class_names
            }
        else:
            checked[attribute] = _check_pair(lists[attribute], attribute, None, params, errors)
    if errors:
        raise CuratedFileError(f"{path}: invalid value lists:\n  " + "\n  ".join(errors))
    return checked


def _check_layout(path: Path, data: Any, dataset: str, class_names: list[str]) -> dict:
    def fail(message: str) -> CuratedFileError:
        return CuratedFileError(f"{path}: {message}")

    if not isinstance(data, dict) or "lists" not in data:
        raise fail("expected a mapping with a 'lists' key (see varireal/curated/demo.yaml)")
    unknown = sorted(str(key) for key in data if key not in _TOP_KEYS)
    if unknown:
        raise fail(f"unknown top-level key(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_KEYS)}")
    if data.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise fail(f"format_version is {data['format_version']!r}; this code reads format_version {FORMAT_VERSION}")
    if data.get("dataset", dataset) != dataset:
        raise fail(f"written for dataset {data['dataset']!r}, but the lists are requested for dataset {dataset!r}")

    lists = data["lists"]
    if not isinstance(lists, dict) or set(lists) != set(ATTRIBUTE_METHODS):
        got = ", ".join(sorted(map(str, lists))) if isinstance(lists, dict) else type(lists).__name__
        raise fail(f"'lists' must have exactly the keys {', '.join(ATTRIBUTE_METHODS)}; got {got}")
    for attribute, method in ATTRIBUTE_METHODS.items():
        if method.lists == "class":
            _check_class_lists(fail, lists[attribute], attribute, dataset, class_names)
        else:
            _check_feasibility_keys(fail, lists[attribute], attribute)
    return lists


def _check_class_lists(fail, per_class: Any, attribute: str, dataset: str, class_names: list[str]) -> None:
    if not isinstance(per_class, dict):
        raise fail(f"'lists.{attribute}' must map class names to lists; got {type(per_class).__name__}")
    non_text = [key for key in per_class if not isinstance(key, str)]
    if non_text:
        raise fail(f"class name(s) {non_text!r} under lists.{attribute} are not strings; quote them")
    missing = [name for name in class_names if name not in per_class]
    if missing:
        hints = [_with_hint(name, list(per_class)) for name in missing]
        raise fail(
            f"lists.{attribute} has no entry for {len(missing)} class(es) of dataset {dataset!r}: {', '.join(hints)}"
        )
    for name in class_names:
        _check_feasibility_keys(fail, per_class[name], f"{attribute}/{name}")


def _check_feasibility_keys(fail, node: Any, where: str) -> None:
    if not isinstance(node, dict) or set(node) != set(FEASIBILITIES):
        got = ", ".join(sorted(map(str, node))) if isinstance(node, dict) else type(node).__name__
        raise fail(f"list {where!r} must have exactly the keys feasible, infeasible; got {got}")


def _with_hint(name: str, present: list[str]) -> str:
    close = difflib.get_close_matches(name, present, n=1)
    return repr(name) + (f" (did you mean {close[0]!r}?)" if close else "")


def _check_pair(node: dict, attribute: str, class_name: str | None, params: PromptsParams, errors: list[str]) -> dict:
    """Validate feasible, then infeasible against it; errors gain the list key."""
    pair = {}
    for feasibility in FEASIBILITIES:
        forbidden = [entry["value"] for entry in pair.get("feasible", [])]
        check = check_value_list(
            node[feasibility],
            min_values=params.min_values,
            max_values=params.max_values,
            forbidden=forbidden,
            truncate=False,
        )
        key = list_key(attribute, feasibility, class_name)
        errors.extend(f"list {key!r}: {error}" for error in check.errors)
        pair[feasibility] = check.values
    return pair
