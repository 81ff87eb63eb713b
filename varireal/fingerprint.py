"""The fingerprint of the code that shapes an item: what its key holds so that a code change remakes it.

An item (a mask, an edit candidate, the judge's answers, a tiny model build, a training checkpoint)
is remade when the code that makes it changes, and only then. Its fingerprint is a Merkle digest
over the project modules it runs, read with `ast` (nothing is imported):

- a module's digest hashes its syntax tree, in which every import of a project module names that
  module's own digest instead of its dotted path. So the digest covers everything the module
  imports, lazily inside functions too, and a module that is only moved or renamed keeps its
  digest and every digest above it (its importers' import lines change, but only in the path);
- left out, because they cannot change what is made: docstrings and comments (not in the tree);
  `if TYPE_CHECKING:` blocks; the message of every `raise` and `assert`; the settings schemas
  (varireal.settings and varireal.params, and every pydantic model's fields and validators
  wherever it is defined) and the vocabulary of names, whose resolved values every key holds
  already; and the key makers
  (varireal.keys, this module, varireal.codebase), whose output the key is.

What each kind of item fingerprints is varireal.keys's; the rule and its limits are in
docs/pipeline.md#when-code-changes.
"""

from __future__ import annotations

import ast
import copy
import hashlib
from functools import cache
from pathlib import Path

from varireal import codebase

# Code that never shapes an item: the settings schemas, their reader and the study's words (the resolved
# values are in every key), and the key makers themselves (the keys they make are). Its import is hashed
# as a mark, so adding an attribute or a dataset to the vocabulary re-keys nothing that exists.
NOT_SHAPING = (
    "varireal.settings",
    "varireal.params",
    "varireal.schema",
    "varireal.vocabulary",
    "varireal.keys",
    "varireal.fingerprint",
    "varireal.codebase",
)
NOT_SHAPING_MARK = "@not-shaping"
# Decorators of a pydantic model's methods that only validate (their results are the settings' values).
VALIDATORS = frozenset({"field_validator", "model_validator", "validator", "root_validator"})


def code_fingerprint(*modules: str) -> str:
    """sha256 of the code `modules` run (module digests, in sorted order: the names are not hashed)."""
    digests = sorted(module_digest(_path(name)) for name in modules)
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _path(name: str) -> Path:
    path = codebase.module_path(name)
    if path is None:
        raise ValueError(f"{name}: not a module of this project ({', '.join(codebase.PACKAGES)})")
    return path


def is_not_shaping(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in NOT_SHAPING)


_IN_PROGRESS: list[Path] = []  # the modules whose digest is being computed: one seen again closes a circle


@cache
def module_digest(path: Path) -> str:
    """The digest of one module and, through its imports, of everything it runs."""
    if path in _IN_PROGRESS:
        circle = " -> ".join(codebase.module_name(p) for p in [*_IN_PROGRESS[_IN_PROGRESS.index(path) :], path])
        raise ValueError(f"import circle: {circle}")
    _IN_PROGRESS.append(path)
    try:
        tree = _with_imports_as_digests(copy.deepcopy(codebase.parsed(path)), path)
    finally:
        _IN_PROGRESS.pop()
    tree = _without_schemas(_without_messages(_without_docstrings(tree)))
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def _with_imports_as_digests(tree: ast.Module, path: Path) -> ast.Module:
    package = codebase.package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = codebase.import_source(node, package)
            named = [f"{source}.{alias.name}" for alias in node.names]
            node.module, node.level = _import_mark([source], named, path), 0
            for alias, name in zip(node.names, named):
                if codebase.module_path(name) is not None:  # `from package import module as x`: a path too
                    alias.name = _import_mark([name], [], path)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                alias.name = _import_mark([alias.name], [], path)
    return tree


def _import_mark(sources: list[str], named: list[str], importer: Path) -> str:
    """What an import is hashed as: the digests of the project modules it runs, a mark for code that shapes
    no item, the name as written for any other package."""
    if sources[0].split(".")[0] not in codebase.PACKAGES:
        return sources[0]
    if is_not_shaping(sources[0]):
        return NOT_SHAPING_MARK
    digests = []
    for name in [*sources, *named]:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            target = codebase.module_path(".".join(parts[:depth]))
            # a package's __init__.py importing its own submodules passes through itself: not an edge
            if (
                target not in (None, importer)
                and codebase.runs_code(target)
                and not is_not_shaping(".".join(parts[:depth]))
            ):
                digests.append(module_digest(target))
    return "@" + ",".join(sorted(set(digests)))


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _without_messages(tree: ast.Module) -> ast.Module:
    """`raise X(message)` -> `raise X`, `assert test, message` -> `assert test`: an error makes no item."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            node.exc, node.cause = node.exc.func, None
        elif isinstance(node, ast.Assert):
            node.msg = None
    return tree


def _without_schemas(tree: ast.Module) -> ast.Module:
    """A pydantic model keeps only its plain methods (and properties): its fields, defaults and validators
    decide values that every key holds already."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept = []
        for child in body:
            if isinstance(child, ast.ClassDef) and _is_schema(child):
                methods = [m for m in child.body if isinstance(m, ast.FunctionDef) and not _validates(m)]
                if not methods:
                    continue
                child.body, child.bases, child.keywords, child.decorator_list = methods, [], [], []
            kept.append(child)
        node.body = kept or [ast.Pass()]
    return tree


def _validates(function: ast.FunctionDef) -> bool:
    names = {
        _name(decorator.func if isinstance(decorator, ast.Call) else decorator) for decorator in function.decorator_list
    }
    return bool(names & VALIDATORS)


def _is_schema(node: ast.ClassDef) -> bool:
    return any(_name(base) in schema_classes() for base in node.bases)


def _name(node: ast.expr) -> str:
    """The last name of `a.b.C`, `C` or `C[T]`."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


@cache
def schema_classes() -> frozenset[str]:
    """Names of the project's classes that derive from pydantic's BaseModel (by name, through the project's
    own classes): the settings schemas and the documents' models."""
    bases: dict[str, set[str]] = {}
    for package in codebase.PACKAGES:
        for path in sorted((codebase.ROOT / package).rglob("*.py")):
            for node in ast.walk(codebase.parsed(path)):
                if isinstance(node, ast.ClassDef):
                    bases.setdefault(node.name, set()).update(_name(base) for base in node.bases)
    found = {"BaseModel"}
    while grown := {name for name, parents in bases.items() if parents & found} - found:
        found |= grown
    return frozenset(found)


def clear_caches() -> None:
    """Forget every digest (tests that change files in place)."""
    for cached in (module_digest, schema_classes, codebase.parsed, codebase._direct, codebase.runs_code):
        cached.cache_clear()


def shaping_modules(*modules: str) -> list[str]:
    """The project modules a fingerprint of `modules` covers (what it hashes, by name), sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _path(name)
        for target in codebase._direct(path):
            target_name = codebase.module_name(target)
            if target != path and codebase.runs_code(target) and not is_not_shaping(target_name):
                todo.append(target_name)
    return sorted(seen)
