"""Imports go one way: no module imports, even lazily, one that imports it back, and the packages
stack in layers (stages on the library; the library on none of stages, tests or benchmarks).

The graph is read from the source with `ast` (varireal.codebase), so an import inside a function
counts as much as one at the top: a lazy import only postpones a circle to the first call.
"""

from __future__ import annotations

import graphlib

import pytest

from varireal.codebase import module_graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or None."""
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        return list(err.args[1])
    return None


def unit(module: str) -> str:
    """What a module belongs to: a subpackage of varireal (varireal.edit), else itself (varireal.io, stages.x)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "varireal" and len(parts) > 2 else module


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph()


def test_the_graph_covers_every_package_and_sees_lazy_imports(graph):
    assert {
        "varireal.params",
        "varireal.edit.items",
        "varireal.finetune.train",
        "stages.edit",
        "varireal.judge.answers",
    } <= set(graph)
    assert "varireal.finetune.train" in graph["stages.train"]
    # cost_plan imports training_steps inside a function: still an edge
    assert "varireal.finetune.batches" in graph["varireal.cost_plan"]


def test_find_cycle_finds_a_circle_and_only_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_one_that_imports_it_back(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_two_packages_import_each_other(graph):
    """varireal.edit -> varireal.judge and back would be one concept in two homes."""
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        units.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    cycle = find_cycle(units)
    assert cycle is None, "packages importing each other: " + " -> ".join(cycle or [])


def test_the_library_never_imports_a_stage(graph):
    """Only the command line sits above the stages (`varireal run <stage>` runs one as DVC would)."""
    wrong = {
        module: sorted(t for t in targets if t.startswith("stages"))
        for module, targets in graph.items()
        if module.startswith("varireal") and module != "varireal.cli"
    }
    assert not {m: t for m, t in wrong.items() if t}


def test_the_schemas_and_errors_are_leaves(graph):
    """The vocabulary, the model spec and the model errors import nothing of the project: anything may import them."""
    for leaf in ("varireal.vocabulary", "varireal.models.spec", "varireal.models.errors"):
        assert graph[leaf] == set(), leaf
