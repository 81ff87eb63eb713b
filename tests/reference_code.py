"""The reference implementation as the test oracle: its own functions, loaded from its source at run time.

`VARIREAL_REFERENCE_DIR` names a copy of Yiveen/SyntheticDataFeasibility at `COMMIT` (CI: ../shared/reference,
set by .ci/run); where it is unset or not such a copy, every test that needs it skips and says why. Each file
is checked against its sha256 below before any of it runs, so a test compares with the code the paper ran and
nothing else. Nothing of the reference is copied into this repository: its functions are compiled from its
files when a test asks for them.

Most of its modules cannot be imported here (a missing package: munch, loralib, tensorboard; transformers 5
has no DPTFeatureExtractor; slurm-era side effects at import), so `load` compiles single top-level functions,
classes or methods out of a file's syntax tree into a namespace the test provides (the module-level names
they use: np, cv2, torch, ...). A method is compiled as a plain function of `self`; `generator_class` puts a
generator's methods, base class first, on one class that tests instantiate without its model-loading
__init__. `constants` rewrites literal values in the loaded code (the hard-coded 1024 px and "cuda" of the
generators, for a CPU run at the tiny models' size); a test that uses it says so.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

COMMIT = "4cddb23acaedf30299e94fd6c7c867702b074d91"
ENV = "VARIREAL_REFERENCE_DIR"
SHA256 = {
    "VariReal/src/generator/base.py": "f55b3f727225811685579a91046c88d40bbbfd4b3ccbfcc45b90c4a576130976",
    "VariReal/src/generator/back_gen.py": "6f75c928ee367d0853da8810b42dbabe99d23c34efbe7a5aa4cd11cecec70d44",
    "VariReal/src/generator/color_gen.py": "21d0d106bb4016409bf760cef232d3f3dd1f5f7bcd7041e2d42846f328639554",
    "VariReal/src/generator/texture_gen.py": "ecff290513ec8937b30a33b58636c1099c0364cf114d51da33617c678de4909a",
    "VariReal/src/config/config_back.py": "306808ae78e4df5d6446df44a3c1c378ee48de14a906003f66ad0bc687c51072",
    "VariReal/src/config/config_color.py": "7ead201f61e61b5e3f9c9c851c8d4c0c145404aa456673f836794e5bea597108",
    "VariReal/src/config/config_texture.py": "cf8758cdf048f07f3bd31c581be20bec8aa13e977de4c1c6513c2fcda7d131c5",
    "VariReal/src/detector/grounding_mask.py": "e31f5355103ba6755a7b46c1ebad3347b9c7eed9b35b1a0ac0e4b99bd7ab0db0",
    "VariReal/src/utils/utils.py": "d66adcb307ef4e7f46343c4c0309fdd6dcd60469d9cb37210c8a29a161a01b69",
    "VariReal/src/vlm_filter/vqa_models.py": "b21bf09374ad254c2ee5bf8d413150348383abc8c6e5be36a11aea46f98f1d90",
    "Finetune/classify/utils.py": "9d5624b70275db4de9d75dadb525b7d1282886ef317df0cd7801a967c01957ef",
    "Finetune/classify/main.py": "b48c0efa00b84fa908230abe717614f1c2d6ee8f5580dc3aaf3b1da0adc857b8",
    "Finetune/classify/data.py": "eb430adc78f980c3e7527cbe7e74129497f5e53ddc2a6c8a7f0f3ecae6aa474b",
    "Finetune/classify/util_data.py": "a93994bc850b628f380cbe1db1c5c0c6fffc0dda4619762c030fa6e5bb9df50f",
    "Finetune/artifacts/oxford_pets/split_coop.csv": "9edc56fea8bec95f8ccf55f661d7a9ec47525a9fbb6ccb9a574026381d04ea6f",
    "Finetune/classify/models/clip.py": "a4e6c6e7610a0d4bcf47df94bb0da654d05dfd15b1ece13a773d7afa1311da76",
}


def reference_dir() -> Path:
    """The reference's root folder, or a skip naming what is missing."""
    value = os.environ.get(ENV)
    if not value:
        pytest.skip(f"{ENV} is not set: point it at the reference at {COMMIT[:7]} (CI: ../shared/reference)")
    root = Path(value).expanduser()
    if not (root / "VariReal").is_dir() or not (root / "Finetune").is_dir():
        pytest.skip(f"{ENV}={value} holds no VariReal/ and Finetune/: not a copy of the reference")
    return root


def reference_file(path: str) -> Path:
    """One pinned file of the reference, its sha256 checked (a mismatch fails: it is not the code the paper ran)."""
    if path not in SHA256:
        raise KeyError(f"{path}: no pinned sha256 in tests/reference_code.py; add it from the file at {COMMIT}")
    file = reference_dir() / path
    if not file.is_file():
        pytest.skip(f"{file} is missing from {ENV}")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert digest == SHA256[path], f"{file}: sha256 {digest}, expected {SHA256[path]} (the file at {COMMIT})"
    return file


def _definitions(tree: ast.Module, name: str, where: str) -> ast.stmt:
    """The top-level def, class or assignment `name`, or `Class.method` as a plain function."""
    owner, _, member = name.partition(".")
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if not member and any(isinstance(t, ast.Name) and t.id == owner for t in targets):
            return node
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == owner:
            if not member:
                return node
            for inner in getattr(node, "body", []):
                if isinstance(inner, ast.FunctionDef) and inner.name == member:
                    return inner
    raise KeyError(f"{where}: no definition {name!r}")


class _Constants(ast.NodeTransformer):
    def __init__(self, replace: Mapping[Any, Any]) -> None:
        self.replace = replace

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        value = node.value
        if type(value) in (int, str) and value in self.replace:
            return ast.copy_location(ast.Constant(self.replace[value]), node)
        return node


def load(
    path: str,
    names: Iterable[str],
    namespace: dict[str, Any] | None = None,
    *,
    constants: Mapping[Any, Any] | None = None,
) -> dict[str, Any]:
    """Compile the named definitions (def, class, top-level assignment) of one reference file into `namespace`
    (its module-level names) and return {name: object}; `Class.method` comes back as a function of self. Decorators are dropped
    (@staticmethod and @abstractmethod only, in the files pinned here)."""
    file = reference_file(path)
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    namespace = {} if namespace is None else namespace
    loaded = {}
    for name in names:
        node = copy.deepcopy(_definitions(tree, name, path))
        if hasattr(node, "decorator_list"):
            node.decorator_list = []
        if constants:
            node = _Constants(constants).visit(node)
        module = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
        exec(compile(module, f"{file}::{name}", "exec"), namespace)  # noqa: S102 - the pinned reference, by design
        loaded[name] = namespace[name.partition(".")[2] or name]
    return loaded


def method_names(path: str, cls: str) -> list[str]:
    """Every method defined in the body of class `cls` of a reference file, in source order."""
    tree = ast.parse(reference_file(path).read_text(encoding="utf-8"))
    node = _definitions(tree, cls, path)
    return [f"{cls}.{item.name}" for item in node.body if isinstance(item, ast.FunctionDef)]


def class_literals(path: str, cls: str) -> dict[str, Any]:
    """The class-level constants of class `cls` (its prompt templates, colour table, category map), read as
    literals: nothing is executed."""
    tree = ast.parse(reference_file(path).read_text(encoding="utf-8"))
    node = _definitions(tree, cls, path)
    return {
        target.id: ast.literal_eval(item.value)
        for item in node.body
        if isinstance(item, ast.Assign)
        for target in item.targets
        if isinstance(target, ast.Name)
    }


def generator_class(
    files: Iterable[tuple[str, str]], namespace: dict[str, Any], *, constants: Mapping[Any, Any] | None = None
) -> type:
    """One class with the constants and methods of each (file, class) in turn, later ones overriding
    (BaseGenerator, then the attribute's generator), __init__ left out: tests set the attributes the methods read."""
    members: dict[str, Any] = {}
    for path, cls in files:
        members.update(class_literals(path, cls))
        names = [name for name in method_names(path, cls) if not name.endswith(".__init__")]
        for name, function in load(path, names, namespace, constants=constants).items():
            members[name.split(".", 1)[1]] = function
    return type("ReferenceGenerator", (), members)


def logger() -> Any:
    """The reference's Logger, as far as its generators use it (log, error): silent."""
    return type("Logger", (), {"log": lambda self, *a, **k: None, "error": lambda self, *a, **k: None})()
