"""The reference's frozen value lists, colour table, aircraft categories and filter questions, read from its files.

Each file is downloaded from the raw URL at the pinned commit (varireal.datasets.download:
resumable, sha256-verified) to data/downloads/reference/<commit>/<path>, and parsed with `ast`:
only the named assignments are evaluated, with `ast.literal_eval`, so nothing in a file is
imported or executed. The config files must hold plain literal assignments and nothing else. The
filter's questions are the f-strings of each generator's get_vqa_question, read as their literal
parts and the two names they interpolate (read_questions).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from varireal.attributes.registry import attribute_method
from varireal.colors import ColorTable
from varireal.datasets.download import ChecksumError, download
from varireal.prompts.schema import ReferenceQuestions
from varireal.settings.prompts import QUESTION_ROLES, ReferenceSource, ValueForm
from varireal.vocabulary import FEASIBILITIES

# role -> the assignments read from its file (module level, or a class attribute in the code files)
NAMES = {
    "background": ("FEASIBLE_BACK", "INFEASIBLE_BACK"),
    "color": ("FEASIBLE_COLOR", "INFEASIBLE_COLOR"),
    "texture": ("FEASIBLE_TEXTURE", "INFEASIBLE_TEXTURE"),
    "color_table": ("COLORS",),  # ColorGen.COLORS in generator/color_gen.py
    "categories": ("CATEGORY_MAP",),  # BaseGenerator.CATEGORY_MAP in generator/base.py
    "class_names": ("SUBSET_NAMES",),  # the class names its pipeline asked the VLM about, per dataset
}
LISTED = ("background", "texture", "color")  # the attributes the reference has lists of (their files: literals only)
LIST_ROLES = (*LISTED, "categories")  # what the `reference` source reads

QUESTION_FUNCTION = "get_vqa_question"
QUESTION_COUNT = 4
CLASS_NAME = "current_class"  # the prefix and class, "pet Abyssinian" (base.py:443-455 + the class)
# per attribute: the name its questions interpolate the value by, and what the value is (schema.ValueForm)
QUESTION_VALUES: dict[str, tuple[str, ValueForm]] = {
    "background": ("current_background", "before_colon"),  # back_gen.py:257,263,269
    "color": ("current_color", "value"),  # color_gen.py:579,585,588
    "texture": ("current_texture", "value_description"),  # texture_gen.py:459,466,469
}


class ReferenceFileError(ValueError):
    """A reference file that cannot be used; the message names the file and what was expected."""


@dataclass(frozen=True)
class Transfer:
    """How the bytes arrive (fetch.timeout_s, retries, retry_wait_s); not what they are."""

    timeout_s: float
    retries: int
    retry_wait_s: float


@dataclass(frozen=True)
class FetchedFile:
    role: str
    path: str  # inside the reference repository
    url: str
    local: Path
    sha256: str

    @property
    def record(self) -> dict[str, str]:
        return {"path": self.path, "url": self.url, "sha256": self.sha256}


def fetch_reference(
    reference: ReferenceSource, roles: Sequence[str], downloads: Path, transfer: Transfer
) -> dict[str, FetchedFile]:
    """Download (or reuse) each role's file and check its sha256 against params.yaml."""
    fetched = {}
    for role in roles:
        spec = reference.files[role]  # type: ignore[index]
        url = reference.file_url(role)
        local = downloads / "reference" / reference.commit / _safe_relative(spec.path)
        try:
            got = download(
                url, local, f"sha256:{spec.sha256}", transfer.timeout_s, transfer.retries, transfer.retry_wait_s
            )
        except ChecksumError as err:
            raise ReferenceFileError(
                f"prompts.reference.files.{role} ({spec.path}): {err}. The file at the pinned commit is not the "
                "one params.yaml pins: check prompts.reference.url, commit and sha256"
            ) from err
        fetched[role] = FetchedFile(role, spec.path, url, got.path, got.sha256)
    return fetched


def _safe_relative(path: str) -> Path:
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise ReferenceFileError(f"prompts.reference.files: path {path!r} must be relative, without '..'")
    return Path(*parts)


def read_literals(path: Path, names: Sequence[str], *, data_only: bool, where: str | None = None) -> dict[str, Any]:
    """The values of the assignments `names` (module level or in a class body), by ast.literal_eval.

    `data_only`: every top-level statement must be an assignment of a literal (no import, call,
    function or class). Never imports or executes the file.
    """
    where = where or str(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=where)
    except SyntaxError as err:
        raise ReferenceFileError(f"{where}: not valid Python source ({err.msg}, line {err.lineno})") from err
    if data_only:
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                raise ReferenceFileError(
                    f"{where}:{node.lineno}: a {type(node).__name__} statement; this file may hold only literal "
                    f"assignments ({', '.join(names)}), so it is refused and nothing in it is run"
                )
    found: dict[str, Any] = {}
    for node in _assignments(tree, nested=not data_only):
        for target in node.targets:
            if isinstance(target, ast.Name) and (data_only or target.id in names):
                found[target.id] = _literal(node, target.id, where)
    missing = [name for name in names if name not in found]
    if missing:
        raise ReferenceFileError(f"{where}: no assignment of {', '.join(missing)}; expected {', '.join(names)}")
    return {name: found[name] for name in names}


def _assignments(tree: ast.Module, nested: bool) -> list[ast.Assign]:
    bodies = [tree.body] + ([node.body for node in tree.body if isinstance(node, ast.ClassDef)] if nested else [])
    return [node for body in bodies for node in body if isinstance(node, ast.Assign)]


def _literal(node: ast.Assign, name: str, where: str) -> Any:
    try:
        return ast.literal_eval(node.value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        raise ReferenceFileError(
            f"{where}:{node.lineno}: {name} is not a plain literal ({err}); only literals are read, nothing is executed"
        ) from err


def read_color_table(path: Path, where: str) -> ColorTable:
    """COLORS: {name: (R, G, B)} from a file in the reference's format (as Python, the last duplicate wins)."""
    table = read_literals(path, NAMES["color_table"], data_only=False, where=where)["COLORS"]
    if not isinstance(table, dict) or not table:
        raise ReferenceFileError(f"{where}: COLORS must be a non-empty dict of name -> (R, G, B)")
    bad = [f"{key!r}: {rgb!r}" for key, rgb in table.items() if not _is_rgb(key, rgb)]
    if bad:
        raise ReferenceFileError(
            f"{where}: COLORS entries must be 'name': (R, G, B) with 0-255 ints; got {', '.join(bad[:5])}"
        )
    return {key: (rgb[0], rgb[1], rgb[2]) for key, rgb in table.items()}


def _is_rgb(key: object, rgb: object) -> bool:
    return (
        isinstance(key, str)
        and isinstance(rgb, (tuple, list))
        and len(rgb) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgb)
    )


def split_value(text: str) -> dict[str, str]:
    """'(suburban backyard)1.2: a lawn ...' -> value '(suburban backyard)1.2' (Compel weight kept),
    description 'a lawn ...' (the text after the first ': '; '' when there is none, as for colours)."""
    value, _, description = text.partition(": ")
    return {"value": value.strip(), "description": description.strip()}


def reference_lists(
    dataset: str, reference_key: str, class_names: Sequence[str], files: Mapping[str, FetchedFile]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The `lists` of a prompts document and the class -> category map, from the reference's files.

    Background: one list per dataset. Color: one per class. Texture: per dataset, per class, or
    per category of CATEGORY_MAP (the reference's aircraft civilian/military), as the file has it.
    Class names match the reference's keys ignoring case and spacing; a class with no list fails.
    """
    literals = {
        role: read_literals(files[role].local, NAMES[role], data_only=role in LISTED, where=_where(files[role]))
        for role in LIST_ROLES
    }
    categories_map = literals["categories"]["CATEGORY_MAP"]
    if not isinstance(categories_map, dict):
        raise ReferenceFileError(f"{_where(files['categories'])}: CATEGORY_MAP must be a dict of class -> category")
    lists: dict[str, Any] = {role: {} for role in LISTED}
    used_categories: dict[str, str] = {}
    for role in LISTED:
        for feasibility, name in zip(FEASIBILITIES, NAMES[role]):
            node = _dataset_node(literals[role][name], reference_key, dataset, f"{_where(files[role])}: {name}")
            where = f"{_where(files[role])}: {name}[{reference_key!r}]"
            if attribute_method(role).lists == "class":
                for class_name, key in _match_classes(node, class_names, where).items():
                    lists[role].setdefault(class_name, {})[feasibility] = _values(node[key], f"{where}[{key!r}]")
            elif isinstance(node, dict):
                groups = _groups(node, class_names, categories_map, where)
                used_categories.update({c: g for c, (g, is_category) in groups.items() if is_category})
                lists[role][feasibility] = {
                    g: _values(node[key], f"{where}[{key!r}]") for g, key in _group_keys(groups, node).items()
                }
            else:
                lists[role][feasibility] = _values(node, where)
    return lists, used_categories


def _where(fetched: FetchedFile) -> str:
    return f"{fetched.path} ({fetched.url})"


def _dataset_node(node: Any, key: str, dataset: str, where: str) -> Any:
    if not isinstance(node, dict) or key not in node:
        got = ", ".join(map(repr, node)) if isinstance(node, dict) else type(node).__name__
        raise ReferenceFileError(
            f"{where}: no entry {key!r} for dataset {dataset!r} (prompts.reference.datasets); it has {got}"
        )
    return node[key]


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


def _match_classes(node: Any, class_names: Sequence[str], where: str) -> dict[str, str]:
    """Our class name -> the file's key for it (ignoring case and spacing); every class must have one."""
    if not isinstance(node, dict):
        raise ReferenceFileError(f"{where}: expected a dict of class name -> list, got {type(node).__name__}")
    keys = {_fold(str(key)): key for key in node}
    missing = [name for name in class_names if _fold(name) not in keys]
    if missing:
        hints = [
            name
            + (
                f" (closest: {close[0]!r})"
                if (close := difflib.get_close_matches(name, list(map(str, node)), n=1))
                else ""
            )
            for name in missing
        ]
        raise ReferenceFileError(f"{where}: no list for {len(missing)} class(es): {', '.join(hints)}")
    return {name: keys[_fold(name)] for name in class_names}


def _groups(node: dict, class_names: Sequence[str], categories_map: dict, where: str) -> dict[str, tuple[str, bool]]:
    """Per class: its group (the class itself when the file has a list for it, else its CATEGORY_MAP
    category, as generator/base.py picks them) and whether that is a category."""
    keys = {_fold(str(key)) for key in node}
    categories = {_fold(str(name)): str(category) for name, category in categories_map.items()}
    groups, missing = {}, []
    for name in class_names:
        if _fold(name) in keys:
            groups[name] = (name, False)
        elif _fold(categories.get(_fold(name), "")) in keys:
            groups[name] = (categories[_fold(name)], True)
        else:
            missing.append(name)
    if missing:
        raise ReferenceFileError(
            f"{where}: no list for class(es) {', '.join(map(repr, missing))}, neither by class name nor by their "
            f"CATEGORY_MAP category; it has lists for {', '.join(map(repr, node))}"
        )
    return groups


def _group_keys(groups: dict[str, tuple[str, bool]], node: dict) -> dict[str, Any]:
    """Group name (our class name or the category) -> the file's key for its list."""
    keys = {_fold(str(key)): key for key in node}
    return {group: keys[_fold(group)] for group, _ in groups.values()}


def _values(node: Any, where: str) -> list[dict[str, str]]:
    """The reference's strings as entries; lists of any length from 1, repeats kept."""
    if not isinstance(node, list) or not node or not all(isinstance(v, str) and v.strip() for v in node):
        raise ReferenceFileError(f"{where}: expected a non-empty list of non-empty strings, got {str(node)[:80]}")
    return [split_value(text) for text in node]


def reference_questions(files: Mapping[str, FetchedFile]) -> dict[str, ReferenceQuestions]:
    """attribute -> its four filter questions, from the generator files of QUESTION_ROLES."""
    return {
        attribute: read_questions(files[role].local, attribute, files[role].path, _where(files[role]))
        for attribute, role in QUESTION_ROLES.items()
    }


def read_questions(path: Path, attribute: str, repo_path: str, where: str) -> ReferenceQuestions:
    """The four `'question': f'...'` values of the file's get_vqa_question, as templates.

    Only the f-strings' constant parts and two names are read: the value's name becomes {value},
    current_class "{prefix} {class_name}". Anything else interpolated (another name, an attribute,
    a call, a conversion or format spec) is refused; nothing in the file is executed.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=where)
    except SyntaxError as err:
        raise ReferenceFileError(f"{where}: not valid Python source ({err.msg}, line {err.lineno})") from err
    functions = [
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == QUESTION_FUNCTION
    ]
    if len(functions) != 1:
        raise ReferenceFileError(f"{where}: expected one function {QUESTION_FUNCTION}, found {len(functions)}")
    function = functions[0]
    nodes = [
        value
        for node in ast.walk(function)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values)
        if isinstance(key, ast.Constant) and key.value == "question"
    ]
    if len(nodes) != QUESTION_COUNT:
        raise ReferenceFileError(
            f"{where}:{function.lineno}: {QUESTION_FUNCTION} has {len(nodes)} 'question' entries; expected {QUESTION_COUNT}"
        )
    value_name, value_form = QUESTION_VALUES[attribute]
    names = {value_name: "{value}", CLASS_NAME: "{prefix} {class_name}"}
    templates = [_template(node, names, where) for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset))]
    source = f"{repo_path}:{function.lineno}-{function.end_lineno}"
    return ReferenceQuestions(templates=tuple(templates), value_form=value_form, source=source)  # type: ignore[arg-type]


def _template(node: ast.expr, names: Mapping[str, str], where: str) -> str:
    """An f-string as a format template: literal text with braces doubled, each known name its placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if not isinstance(node, ast.JoinedStr):
        raise ReferenceFileError(
            f"{where}:{node.lineno}: a question must be a string or f-string, got {type(node).__name__}"
        )
    parts = []
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            parts.append(part.value.replace("{", "{{").replace("}", "}}"))
        elif (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Name)
            and part.value.id in names
            and part.conversion == -1
            and part.format_spec is None
        ):
            parts.append(names[part.value.id])
        else:
            raise ReferenceFileError(
                f"{where}:{node.lineno}: the question f-string interpolates {ast.unparse(part)!r}; only "
                f"{', '.join('{' + name + '}' for name in names)} (no conversion or format spec) are read, so it is refused"
            )
    return "".join(parts)


def reference_class_names(
    dataset: str, reference_key: str, class_names: Sequence[str], fetched: FetchedFile
) -> dict[str, str]:
    """Our class name -> the reference's spelling of it (its SUBSET_NAMES, which its pipeline asked the VLM
    about), matched ignoring case and spacing; a class the reference does not name fails."""
    where = _where(fetched)
    listed = read_literals(fetched.local, NAMES["class_names"], data_only=False, where=where)["SUBSET_NAMES"]
    node = _dataset_node(listed, reference_key, dataset, f"{where}: SUBSET_NAMES")
    if not isinstance(node, list) or not all(isinstance(name, str) for name in node):
        raise ReferenceFileError(f"{where}: SUBSET_NAMES[{reference_key!r}] must be a list of class names")
    return _match_classes({name: name for name in node}, class_names, f"{where}: SUBSET_NAMES[{reference_key!r}]")
