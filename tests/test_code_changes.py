"""A code change reaches exactly the outputs it can shape (varireal.codebase).

dvc.yaml's code deps of each stage are its import closure, file for file; every persisted item's
key carries the fingerprint of the code that makes it, so `dvc repro` after a change remakes the
items, and a change no stage imports (a benchmark, a doc) reruns nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from pipeline_repo import REPO, dvc, ran_stages

from varireal.codebase import PACKAGES, runs_code, stage_deps
from varireal.io import read_table

# Data files under the code packages that a stage reads (not code: no closure lists them).
DATA_DEPS = {"prompts": {"varireal/curated"}}


def _declared_code(stage: dict, name: str) -> set[str]:
    """The stage's deps under the code packages, directories expanded to the files DVC hashes."""
    files: set[str] = set()
    for dep in stage.get("deps", []):
        if dep.split("/")[0] not in PACKAGES or dep in DATA_DEPS.get(name, set()):
            continue
        path = REPO / dep
        assert path.exists(), f"{name}: dep {dep} does not exist"
        if path.is_file():
            files.add(dep)
            continue
        # a directory: every file in it counts, but a package's docstring-only __init__.py, which runs nothing
        found = [p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
        files |= {p.relative_to(REPO).as_posix() for p in found if p.suffix != ".py" or runs_code(p)}
    return files


def test_every_stage_depends_on_exactly_the_code_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, stage in stages.items():
        module = stage["cmd"].split()[2]  # python -m stages.<name> [args]
        expected, declared = set(stage_deps(module)), _declared_code(stage, name)
        if missing := sorted(expected - declared):
            problems.append(f"{name}: add to deps {missing}")
        if extra := sorted(declared - expected):
            problems.append(f"{name}: not imported by {module}, remove from deps {extra}")
    assert not problems, "\n".join(problems)


def test_the_library_never_imports_tests_or_benchmarks():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text()
            for forbidden in ("import tests", "from tests", "import benchmarks", "from benchmarks"):
                assert forbidden not in text, f"{path.relative_to(REPO)}: {forbidden}"


def _copy(repro: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(repro, repo, symlinks=True)
    return repo


def _shard_state(set_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((set_dir / "shards").glob("*.tar"))}


def test_a_colour_fix_remakes_the_colour_sets_only_and_a_benchmark_or_doc_change_reruns_nothing(repro, tmp_path):
    repo = _copy(repro, tmp_path)
    (repo / "benchmarks/edit.py").write_text(
        (repo / "benchmarks/edit.py").read_text() + "\nBATCH_SIZES_EXTRA = (16,)\n"
    )
    (repo / "docs").mkdir(exist_ok=True)
    (repo / "docs/finetune.md").write_text("# changed\n")
    status = dvc("status", cwd=repo)
    assert "up to date" in status.stdout, status.stdout

    stages = ["edit@background-feasible", "edit@color-feasible"]
    sets = {name: repo / "data/edits" / name.split("@")[1].replace("-", "/") for name in stages}
    before = {name: _shard_state(folder) for name, folder in sets.items()}
    ids = read_table(sets["edit@color-feasible"] / "manifest.parquet")["edit_id"]

    # A docstring of the colour method: DVC reruns the stages that import it, which keep every item.
    color = repo / "varireal/attributes/color.py"
    source = color.read_text()
    color.write_text(source.replace('"""Tint inside the mask', '"""A tint inside the mask', 1))
    assert ran_stages(dvc("repro", "-s", *stages, cwd=repo).stdout) == stages
    assert {name: _shard_state(folder) for name, folder in sets.items()} == before

    # A line that shapes the colour edits' pixels: every colour candidate is made again, no other.
    tint = "tinted.append(ops.tint(job.square.image, job.square.mask, rgb, alpha, settings.rounding))"
    assert tint in source
    color.write_text(color.read_text().replace(tint, tint.replace("rgb, alpha", "rgb, alpha / 2")))
    dvc("repro", "-s", *stages, cwd=repo)
    after = {name: _shard_state(folder) for name, folder in sets.items()}
    assert after["edit@background-feasible"] == before["edit@background-feasible"]  # bytes and mtimes
    recolored = after["edit@color-feasible"]
    assert recolored.keys() == before["edit@color-feasible"].keys()
    assert all(recolored[name][0] != before["edit@color-feasible"][name][0] for name in recolored)
    assert list(read_table(sets["edit@color-feasible"] / "manifest.parquet")["edit_id"]) == list(ids)


def test_a_checkpoint_or_tiny_build_of_other_code_is_not_reused(monkeypatch):
    import pandas as pd

    from varireal.finetune import checkpoint
    from varireal.models import weights
    from varireal.models.spec import ModelSpec

    selection = pd.DataFrame({"kind": ["real"], "id": ["a"], "class_index": [0], "feasibility": [""], "size": [1]})
    spec = ModelSpec(source="tiny", seed=0)
    before = checkpoint.fingerprint({"lr": 1.0}, selection, {}), weights.tiny_spec_key("clip", spec)
    monkeypatch.setattr(checkpoint, "train_code", lambda: "the train stage's code after a fix")
    monkeypatch.setattr(weights, "tiny_build_code", lambda: "the tiny builders after a fix")
    after = checkpoint.fingerprint({"lr": 1.0}, selection, {}), weights.tiny_spec_key("clip", spec)
    assert before[0] != after[0] and before[1] != after[1]
