"""params.yaml's "only what differs" blocks: a base mapping with each named set of differences merged in.

`edit.<profile>.datasets`, a method's `feasibility` and `train.<profile>.datasets` list only what
differs from their block; they are merged into it on the raw params, before validation, so a wrong
key or value is named by its full path.
"""

from __future__ import annotations

from typing import Any


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def set_in_both(base: dict[str, Any], changes: dict[str, Any]) -> list[tuple[str, ...]]:
    """The key paths that `changes` would replace in `base` rather than add (mappings are followed)."""
    found: list[tuple[str, ...]] = []
    for key, value in changes.items():
        if key not in base:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict):
            found += [(key, *path) for path in set_in_both(base[key], value)]
        else:
            found.append((key,))
    return found


def each_merged(base: dict[str, Any], differences: dict[str, Any]) -> dict[str, Any]:
    """{name: base with that name's differences}; an empty entry is the base, and an entry that is not
    a mapping is kept as it is, for validation to name."""
    return {
        name: merged(base, changes or {}) if isinstance(changes, dict | None) else changes
        for name, changes in differences.items()
    }
