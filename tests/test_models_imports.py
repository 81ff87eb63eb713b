"""varireal.models imports in one direction: no module imports, even lazily, a module that imports it back.

Read from the source with `ast`, so an import inside a function counts as much as one at the top:
a lazy import only postpones the circle to the first call. The parent package that Python imports
before any submodule is not an edge: its __init__.py imports only leaves (checked below), which
import nothing of the package, so it cannot close a circle either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "varireal.models"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "varireal" / "models"


def module_names(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, Path]:
    """{dotted name: file} of the package and its modules (the package itself is its __init__.py)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join((package, *parts))] = path
    return names


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module a `from ... import` names, with relative levels resolved against the importer."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_statements(source: str, importer: str, is_package: bool = False) -> set[tuple[str, str | None]]:
    """(module, name) of every import anywhere in `source`: top level, in functions, in branches.

    `import a.b` and `importlib.import_module("a.b")` give ("a.b", None); `from a import b` gives ("a", "b"),
    which loads the module a.b when there is one, else reads the name b from a.
    """
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, importer, is_package)
            found.update((module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add((node.args[0].value, None))
    return found


def imported_modules(source: str, importer: str, modules: set[str], is_package: bool = False) -> set[str]:
    """The modules of `modules` that the imports in `source` load."""
    found = set()
    for module, name in import_statements(source, importer, is_package):
        target = f"{module}.{name}" if name is not None and f"{module}.{name}" in modules else module
        if target in modules and target != importer:
            found.add(target)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, each import resolved to the module it loads."""
    names = set(modules)
    return {
        name: imported_modules(path.read_text(), name, names, path.name == "__init__.py")
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(module_names())


def test_the_parser_sees_lazy_relative_and_dynamic_imports():
    source = (
        "import os\n"
        "from varireal.models.spec import ModelSpec\n"
        "def f():\n"
        "    from varireal.models import roles, errors\n"
        "    if True:\n"
        "        import varireal.models.tiny as t\n"
        "    from . import kind\n"
        "    from .load import check_model_dir\n"
        "    importlib.import_module('varireal.models.clip')\n"
    )
    modules = {f"varireal.models.{name}" for name in ("roles", "errors", "spec", "tiny", "kind", "load", "clip")}
    found = imported_modules(source, "varireal.models.core", modules | {"varireal.models", "varireal.models.core"})
    assert found == modules  # `from varireal.models import roles` loads roles, not a name of __init__.py


def test_the_graph_covers_the_package(graph):
    assert {"varireal.models", "varireal.models.spec", "varireal.models.roles", "varireal.models.kind"} <= set(graph)
    assert "varireal.models.kind" in graph["varireal.models.roles"]
    assert "varireal.models.spec" in graph["varireal.models.kind"]


def test_find_cycle_finds_a_circle_and_only_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_the_package_imports_one_that_imports_it_back(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in varireal.models: " + " -> ".join(cycle or [])


def test_the_schema_and_the_errors_are_leaves(graph):
    """spec.py (params schema) and errors.py import nothing of the package, so anything may import them."""
    assert graph["varireal.models.spec"] == set()
    assert graph["varireal.models.errors"] == set()
    assert graph["varireal.models"] <= {"varireal.models.errors", "varireal.models.spec"}

