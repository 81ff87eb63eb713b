"""Which project files a module runs, and one fingerprint of their code.

Two promises rest on this: dvc.yaml's `deps` of a stage are exactly the project files its entry
module imports (tests/test_code_changes.py checks every stage), and every persisted, resumable item
(mask, edit candidate, filter answer, tiny model build, training checkpoint) carries in its key
the fingerprint of the code that makes it. So a change to that code makes `dvc repro` rerun the
stage (DVC: the dep changed) *and* remake the items (the keys changed), while a benchmark, a doc
or a test is in no closure and reruns nothing.

Imports are read from the source with `ast` (nothing is imported or executed), every `import`
statement counted, the lazy ones inside functions too: they run when the code path does. The
fingerprint hashes each file's syntax tree without docstrings, so a comment, a docstring or
reformatting leaves keys as they were (DVC still reruns the stage, which then reuses every item).
"""

from __future__ import annotations

import ast
import hashlib
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> set[str]:
    """Dotted names this file imports: `import a.b`, `from a import b` (a.b if a module, else a)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
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
        _module_name(path): {_module_name(target) for target in _direct(path) if target != path and runs_code(target)}
        for path in modules
    }


def import_closure(*modules: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Every project file that importing `modules` can run, sorted; `exclude`: packages or modules
    not followed (e.g. code a stage runs that decides something other than the item's bytes)."""
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
        if path not in seen and not _excluded(path, exclude):
            seen.add(path)
            todo.extend(_direct(path) - seen)
    return sorted(seen)


@cache
def runs_code(path: Path) -> bool:
    """False for a file that is only a docstring (a package's __init__.py): it runs nothing."""
    body = ast.parse(path.read_bytes(), filename=str(path)).body
    return (
        len(body) > 1 or bool(body) and not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant))
    )


def stage_deps(module: str) -> list[str]:
    """What dvc.yaml's `deps` of the stage run as `python -m <module>` list of this project's code."""
    return [path.relative_to(ROOT).as_posix() for path in import_closure(module) if runs_code(path)]


def _excluded(path: Path, exclude: tuple[str, ...]) -> bool:
    name = _module_name(path)
    return any(name == prefix or name.startswith(prefix + ".") for prefix in exclude)


def _without_docstrings(tree: ast.AST) -> ast.AST:
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


@cache
def code_fingerprint(*modules: str, exclude: tuple[str, ...] = ()) -> str:
    """sha256 of the code `modules` run: each closure file's path and syntax tree (no docstrings)."""
    digest = hashlib.sha256()
    for path in import_closure(*modules, exclude=exclude):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + _tree_digest(path) + b"\0")
    return digest.hexdigest()


@cache
def _tree_digest(path: Path) -> bytes:
    tree = _without_docstrings(ast.parse(path.read_bytes(), filename=str(path)))
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).digest()


# What makes each persisted, resumable item: the modules whose closure its key fingerprints.
def mask_code() -> str:
    return code_fingerprint("stages.masks")


def edit_code() -> str:
    """The edit stage's code but the judge, which decides answers (keyed by answer_code), not pixels."""
    return code_fingerprint("stages.edit", exclude=("varireal.judge",))


def answer_code() -> str:
    """The judge's code: shared by the edit stage's early stop and the filter stage, whose keys must agree."""
    return code_fingerprint("varireal.judge.answers", "varireal.models.vlm")


def tiny_build_code() -> str:
    """Every role's tiny builder (the registry imports them all)."""
    return code_fingerprint("varireal.models.roles")


def train_code() -> str:
    return code_fingerprint("stages.train")
