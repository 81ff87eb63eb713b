"""Which project files a module runs: dvc.yaml's code `deps` of each stage.

dvc.yaml's `deps` of a stage are exactly the project files its entry module imports
(tests/test_code_changes.py checks every stage), so a change to that code makes `dvc repro` rerun
the stage, while a benchmark, a doc or a test is in no closure and reruns nothing. Whether a rerun
remakes an item is decided by the item's key (varireal.fingerprint: the code that shapes it).

Imports are read from the source with `ast` (nothing is imported or executed), every `import`
statement counted, the lazy ones inside functions too: they run when the code path does. Imports
under `if TYPE_CHECKING:` run nothing and are not counted.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("varireal", "stages")


def module_path(name: str) -> Path | None:
    """The project file of a dotted module name (a package's __init__.py), None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """The package a file's relative imports start from."""
    return module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]


def import_source(node: ast.ImportFrom, package: str) -> str:
    """The module a `from ... import` names, relative imports resolved against `package`."""
    if not node.level:
        return node.module or ""
    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def without_type_checking(tree: ast.Module) -> ast.Module:
    """The tree with every `if TYPE_CHECKING:` block removed: imports for type hints run nothing."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                kept = [child for child in block if not _type_checking_only(child)]
                if len(kept) != len(block):
                    setattr(node, field, kept or [ast.Pass()])
    return tree


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
    return name == "TYPE_CHECKING" and not node.orelse  # type: ignore[union-attr]


@cache
def parsed(path: Path) -> ast.Module:
    """A file's syntax tree without its `if TYPE_CHECKING:` blocks (callers copy before changing it)."""
    return without_type_checking(ast.parse(path.read_bytes(), filename=str(path)))


def _imported_names(path: Path) -> set[str]:
    """Dotted names this file imports: `import a.b`, `from a import b` (a.b if a module, else a)."""
    package = package_of(path)
    names: set[str] = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = import_source(node, package)
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


@cache
def _direct(path: Path) -> frozenset[Path]:
    """Project files one file imports, with the __init__.py of every package on the way."""
    found: set[Path] = set()
    for name in _imported_names(path):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            target = module_path(".".join(parts[:depth]))
            if target is not None:
                found.add(target)
    return frozenset(found)


def module_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports} for every module of PACKAGES (a package is its __init__.py).

    A docstring-only __init__.py runs nothing and so is no edge: importing varireal.edit.items
    passes through varireal/edit/__init__.py, which cannot close a circle.
    """
    modules = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    return {
        module_name(path): {module_name(target) for target in _direct(path) if target != path and runs_code(target)}
        for path in modules
    }


def import_closure(*modules: str) -> list[Path]:
    """Every project file that importing `modules` can run, sorted."""
    todo = []
    for name in modules:
        path = module_path(name)
        if path is None:
            raise ValueError(f"{name}: not a module of this project ({', '.join(PACKAGES)})")
        parts = name.split(".")
        todo += [p for depth in range(1, len(parts) + 1) if (p := module_path(".".join(parts[:depth]))) is not None]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_direct(path) - seen)
    return sorted(seen)


@cache
def runs_code(path: Path) -> bool:
    """False for a file that is only a docstring (a package's __init__.py): it runs nothing."""
    body = parsed(path).body
    return (
        len(body) > 1 or bool(body) and not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant))
    )


def stage_deps(module: str) -> list[str]:
    """What dvc.yaml's `deps` of the stage run as `python -m <module>` list of this project's code."""
    return [path.relative_to(ROOT).as_posix() for path in import_closure(module) if runs_code(path)]
