"""params.yaml read, overridden, merged and validated against a schema: `load_params(Schema)`.

The settings are two files read as one: params.yaml, the study's front page (its knobs, the
reference's switches, the machine), and method.yaml beside it, the method's constants. A key lives
in one of them; DVC tracks both (dvc.yaml names each key's file) and `dvc exp run -S` sets either
(`-S method.yaml:key=value`). Each stage validates the sections it reads with its schema from varireal.settings (so a stage's code
depends on its own settings only); `varireal check-params` validates all of them
(varireal.settings.whole). A wrong key or value stops the stage with a message that names the key,
the value given and what is allowed, before any model is loaded or file is written.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from varireal.differences import merged, set_in_both
from varireal.io import DuplicateKeyError, read_yaml
from varireal.vocabulary import PARAMS_SECTIONS, PROFILES

T = TypeVar("T", bound=BaseModel)
METHOD_FILE = "method.yaml"  # beside params.yaml: the method's constants (params.yaml is the study's front page)

BOOL_AS_NUMBER = "a number is expected, not a boolean (YAML reads true/false, yes/no and on/off as booleans)"


@cache
def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def bools_given_for_numbers(
    raw: Any, schema: dict[str, Any], defs: dict[str, Any], loc: tuple = ()
) -> dict[tuple, bool]:
    """{key path: value} of every true/false in `raw` where `schema` (a model's JSON schema) allows only numbers."""
    branches = [
        defs[branch["$ref"].rsplit("/", 1)[1]] if "$ref" in branch else branch
        for branch in schema.get("anyOf", [schema])
    ]
    if isinstance(raw, bool):
        types = {branch.get("type") for branch in branches}
        return {loc: raw} if types & {"integer", "number"} and "boolean" not in types else {}
    found: dict[tuple, bool] = {}
    for branch in branches:
        if isinstance(raw, dict):
            parts = [(key, branch.get("properties", {}).get(key, branch.get("additionalProperties"))) for key in raw]
        elif isinstance(raw, list):
            prefix = branch.get("prefixItems", [])
            parts = [
                (index, prefix[index] if index < len(prefix) else branch.get("items")) for index in range(len(raw))
            ]
        else:
            parts = []
        for key, part in parts:
            if isinstance(part, dict):
                found |= bools_given_for_numbers(raw[key], part, defs, (*loc, key))
    return found


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or has a key or value that is not allowed."""


def profiled_sections(schema: type[BaseModel]) -> dict[str, set[str]]:
    """{section: its own fields} for every section of `schema` with a tiny and a paper block. Beside the
    blocks, the keys that are not the section's own fields (train's knobs) are shared by both profiles."""
    found = {}
    for name, field in schema.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel) and set(PROFILES) <= set(section.model_fields):
            found[name] = set(section.model_fields) - set(PROFILES)
    return found


def with_shared_settings(raw: Any, schema: type[BaseModel]) -> Any:
    """raw params where each profiled section's shared keys are merged into its tiny and paper blocks
    (mappings key by key), so the schema sees whole blocks.

    A setting lives in one place: a key both shared and in a block is refused, so dvc.yaml can name
    each stage's params exactly (`masks.box_threshold`, `masks.${profile}.batch_size`).
    """
    if not isinstance(raw, dict):
        return raw
    whole = dict(raw)
    for name, own in profiled_sections(schema).items():
        section = raw.get(name)
        if not isinstance(section, dict):
            continue
        shared = {k: v for k, v in section.items() if k not in PROFILES and k not in own}
        whole[name] = {k: v for k, v in section.items() if k in PROFILES or k in own}
        for profile in PROFILES:
            block = section.get(profile)
            if isinstance(block, dict):
                if twice := set_in_both(shared, block):
                    written = ".".join((name, *twice[0]))
                    raise ParamsError(
                        f"{name}.{profile}.{'.'.join(twice[0])}: {written} is already set for both profiles; "
                        f"a setting is written once, either beside the blocks or in both of them"
                    )
                block = merged(shared, block)
            whole[name][profile] = block
    return whole


def written_at(raw: Any, loc: tuple, profiled: Any = ()) -> tuple:
    """Where in the params a validated key path is written: `masks.tiny.box_threshold` is written as
    `masks.box_threshold` when the block does not set it and the shared keys do (profiled: the sections
    with blocks); a key missing from both is named in the block."""
    if len(loc) < 3 or loc[0] not in profiled or loc[1] not in PROFILES or not isinstance(raw, dict):
        return loc
    section = raw.get(loc[0])
    block = section.get(loc[1]) if isinstance(section, dict) else None
    if _holds(block, loc[2:]) or not _holds(section, loc[2:-1]) or loc[-1] == "[key]":
        return loc
    return (loc[0], *loc[2:])


def _holds(node: Any, path: tuple) -> bool:
    """Whether `node` has every part of `path` (mapping keys, list indices)."""
    for part in path:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def load_params(schema: type[T], path: str | Path = "params.yaml", overrides: list[str] = ()) -> T:
    """The sections of params.yaml (with method.yaml beside it) that `schema` names (a stage's, from
    varireal.settings), validated; `overrides` are `key.path=value` as in `dvc exp run -S` (existing keys only)."""
    path = Path(path)
    raw = read_raw(path)
    for override in overrides:
        apply_override(raw, override, path)
    unknown = sorted(str(key) for key in raw if key not in PARAMS_SECTIONS)
    if unknown:
        raise ParamsError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; allowed: {', '.join(PARAMS_SECTIONS)}"
        )
    picked = {key: value for key, value in raw.items() if key in schema.model_fields}
    try:
        whole = with_shared_settings(picked, schema)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None
    try:
        refuse_bools_for_numbers(whole, schema)
        return schema.model_validate(whole)
    except ValidationError as err:
        raise ParamsError(describe_errors(path, err, raw, profiled_sections(schema))) from None


def read_raw(path: Path) -> dict[str, Any]:
    """params.yaml and, beside it, method.yaml as one mapping, before any check. A key lives in one of the
    two files; a key written in both, a duplicate key, a missing params.yaml or bad YAML is a ParamsError."""
    raw = _read_file(path)
    method = path.with_name(METHOD_FILE)
    if method.is_file():
        constants = _read_file(method)
        if twice := set_in_both(raw, constants):
            key = ".".join(twice[0])
            raise ParamsError(f"{key}: set in both {path} and {method}; a setting is written in one of them")
        raw = merged(raw, constants)
    return raw


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = read_yaml(path.read_text(), path)
    except DuplicateKeyError as err:
        raise ParamsError(str(err)) from None
    except FileNotFoundError as err:
        raise ParamsError(f"{path}: not found; run from the repository root") from err
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (profile, dataset, masks, ...)")
    return raw


def refuse_bools_for_numbers(whole: dict[str, Any], schema: type[BaseModel]) -> None:
    """pydantic reads true as 1 where a number is expected (`epochs: true` trained one epoch): every
    section is checked against the schema's own JSON schema before it is validated."""
    definition = json_schema(schema)
    slipped = bools_given_for_numbers(whole, definition, definition.get("$defs", {}))
    if slipped:
        raise ValidationError.from_exception_data(
            schema.__name__,
            [
                InitErrorDetails(type=PydanticCustomError("bool_as_number", BOOL_AS_NUMBER), loc=loc, input=value)
                for loc, value in slipped.items()
            ],
        )


def apply_override(raw: dict, override: str, path: Path) -> None:
    """Set `a.b.c=value` (value read as YAML) in the raw params; the key must exist, as for `dvc exp run -S`.
    As there, a key of method.yaml may be named `method.yaml:a.b.c=value`."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ParamsError(f"-S {override!r}: expected key=value, e.g. profile=paper")
    file, colon, dotted = key.rpartition(":")
    if colon and file not in (path.name, METHOD_FILE):
        raise ParamsError(f"-S {override}: {file} is not a params file; use {path.name} or {METHOD_FILE}")
    key = dotted if colon else key
    *parents, last = key.split(".")
    node = raw
    for depth, part in enumerate([*parents, last]):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"-S {override}: {'.'.join([*parents, last][: depth + 1])} is not a key of {path}")
        if depth < len(parents):
            node = node[part]
    node[last] = yaml.safe_load(text)


def describe_errors(path: Path, err: ValidationError, raw: Any = None, profiled: Any = ()) -> str:
    """One line per error, each naming the key as params.yaml writes it (raw: the params as read); a
    shared key that is wrong for both profiles is one line."""
    lines: dict[str, None] = {}
    for error in err.errors():
        key = ".".join(str(part) for part in written_at(raw, tuple(error["loc"]), profiled))
        value = _short(error.get("input"))
        if not key:  # a check across sections says where itself
            lines[f"  {error['msg'].removeprefix('Value error, ')}"] = None
        elif error["type"] == "extra_forbidden":
            lines[f"  {key} = {value}: unknown key (misspelled? see params.yaml for the allowed keys)"] = None
        elif error["type"] == "missing":
            lines[f"  {key}: required key is missing"] = None
        else:
            lines[f"  {key} = {value}: {error['msg']}"] = None
    return "\n".join([f"{path}: {len(lines)} invalid setting(s)", *lines])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
