"""One validator for every value list, whether an LLM wrote it or a person did."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

_ENTRY_KEYS = ("value", "description")


@dataclass(frozen=True)
class ValueListCheck:
    """The entries that were kept (stripped, at most max_values) and what was wrong."""

    values: list[dict[str, str]]
    errors: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def normalize_value(text: str) -> str:
    """The form in which two values count as the same: case and whitespace ignored."""
    return " ".join(text.split()).casefold()


def check_value_list(
    entries: object,
    *,
    min_values: int,
    max_values: int,
    forbidden: Iterable[str] = (),
    truncate: bool,
) -> ValueListCheck:
    """Check a list of {value, description} entries.

    `forbidden` are values of the opposite list (the feasible values when checking an
    infeasible list). With `truncate`, entries beyond max_values are dropped before checking
    (an LLM that over-delivers is not wrong); without it, too many is an error (a curated
    file is never shortened silently).
    """
    if not isinstance(entries, list):
        return ValueListCheck([], [f"expected a list of {{value, description}} entries, got {_kind(entries)}"])
    errors: list[str] = []
    if len(entries) > max_values:
        if truncate:
            entries = entries[:max_values]
        else:
            errors.append(f"has {len(entries)} entries, more than max_values={max_values}")
    if len(entries) < min_values:
        errors.append(f"has {len(entries)} entries, fewer than min_values={min_values}")

    forbidden_keys = {normalize_value(value) for value in forbidden}
    first_seen: dict[str, int] = {}
    values: list[dict[str, str]] = []
    for number, entry in enumerate(entries, start=1):
        entry_errors = _entry_errors(entry)
        if entry_errors:
            errors.extend(f"entry {number}: {error}" for error in entry_errors)
            continue
        value, description = entry["value"].strip(), entry["description"].strip()
        key = normalize_value(value)
        if key in first_seen:
            errors.append(
                f"entry {number}: value {value!r} duplicates entry {first_seen[key]} (case and spaces are ignored)"
            )
        else:
            first_seen[key] = number
        if key in forbidden_keys:
            errors.append(f"entry {number}: value {value!r} also appears in the feasible list")
        values.append({"value": value, "description": description})
    return ValueListCheck(values, errors)


def _entry_errors(entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return [f"expected an object with keys value and description, got {_kind(entry)}"]
    errors = []
    unknown = sorted(str(key) for key in entry if key not in _ENTRY_KEYS)
    if unknown:
        errors.append(f"unknown key(s) {', '.join(unknown)}; allowed: value, description")
    for name in _ENTRY_KEYS:
        if name not in entry:
            errors.append(f"missing {name!r}")
        elif not isinstance(entry[name], str):
            errors.append(f"{name} must be a string, got {_kind(entry[name])} (quote it in YAML)")
        elif not entry[name].strip():
            errors.append(f"{name} is an empty string")
    return errors


def _kind(obj: object) -> str:
    text = repr(obj)
    return f"{type(obj).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def extract_json_object(text: str) -> dict:
    """The first JSON object in `text`, wherever it starts (code fences, chatter around it).

    Raises ValueError when there is none; the message says why the last candidate failed.
    """
    decoder = json.JSONDecoder()
    last_failure = "the answer contains no '{'"
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
            return obj
        except json.JSONDecodeError as err:
            last_failure = f"the text from character {start} is not valid JSON ({err.msg} at character {err.pos})"
            # text[start:err.pos] parsed as JSON, so any '{' inside it belongs to the broken
            # object (an answer cut off by max_new_tokens must not yield its first entry)
            start = text.find("{", max(start + 1, err.pos))
    raise ValueError(f"no JSON object found: {last_failure}")


def check_answer(text: str, *, min_values: int, max_values: int, forbidden: Iterable[str] = ()) -> ValueListCheck:
    """Validate an LLM answer, which must be {"values": [{value, description}, ...]}."""
    try:
        obj = extract_json_object(text)
    except ValueError as err:
        return ValueListCheck([], [str(err)])
    if set(obj) != {"values"}:
        keys = ", ".join(sorted(map(str, obj))) or "none"
        return ValueListCheck([], [f'expected a JSON object with the single key "values", got keys: {keys}'])
    return check_value_list(
        obj["values"], min_values=min_values, max_values=max_values, forbidden=forbidden, truncate=True
    )
