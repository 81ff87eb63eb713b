"""Attributes are one module each (varireal.attributes), listed once, and a new one is a new file.

The last test follows docs/extending.md's "Adding an attribute" as written: it writes each of the
guide's blocks where the guide says, then runs the new attribute through the pipeline.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from pipeline_repo import REPO, dvc, run

from varireal.attributes.kind import AttributeMethod
from varireal.attributes.pipelines import EDITOR_ROLES
from varireal.attributes.registry import ATTRIBUTE_METHODS
from varireal.differences import merged
from varireal.io import read_table
from varireal.settings.whole import load_all_params
from varireal.vocabulary import ATTRIBUTES


def test_the_registry_lists_the_vocabularys_attributes_each_by_its_own_name():
    assert tuple(ATTRIBUTE_METHODS) == ATTRIBUTES
    for name, method in ATTRIBUTE_METHODS.items():
        assert isinstance(method, AttributeMethod) and method.name == name
        assert set(method.editors) <= set(EDITOR_ROLES), name
        assert method.main_step in method.settings.model_fields, name
        assert {field for field, _ in method.costed_steps} <= set(method.settings.model_fields), name


def test_each_attributes_settings_are_its_params_block_in_both_profiles():
    params = load_all_params(REPO / "params.yaml")
    for profile in ("tiny", "paper"):
        edit = params.edit.pick(profile)
        for name, method in ATTRIBUTE_METHODS.items():
            assert isinstance(edit.method(params.dataset, name, "feasible"), method.settings), (profile, name)


def _guide_blocks() -> list[tuple[str, str]]:
    guide = (REPO / "docs/extending.md").read_text()
    section = guide[guide.index("## Adding an attribute") :]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)


def test_the_guide_adds_an_attribute_that_runs_end_to_end(repro, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(repro, repo, symlinks=True)
    (module, registry, vocabulary), (matrix, params, lists) = (
        [text for kind, text in _guide_blocks() if kind == language] for language in ("python", "yaml")
    )
    # 1. the module, where its first line says
    target = module.splitlines()[0].removeprefix("# ")
    assert target == "varireal/attributes/weather.py"
    (repo / target).write_text(module)
    # 2. the registry line and the vocabulary
    registry_file = repo / "varireal/attributes/registry.py"
    text = registry_file.read_text()
    line = next(line for line in text.splitlines() if line.startswith("ATTRIBUTE_METHODS"))
    import_line, new_line = (line for line in registry.strip().splitlines() if line)
    text = text.replace(
        "from varireal.attributes.texture import TEXTURE\n",
        f"from varireal.attributes.texture import TEXTURE\n{import_line}\n",
    )
    registry_file.write_text(text.replace(line, new_line))
    _replace_line(repo / "varireal/vocabulary.py", "Attribute = Literal[", vocabulary.strip())
    # 3. the pipeline's matrices; 4. the settings; 5. the value lists
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("attr: [background, color, texture]", matrix.strip()))
    for block in (params, lists):  # each in the file its first line names
        _merge_yaml(repo / block.splitlines()[0].removeprefix("# "), block)

    checked = run([_python(), "-m", "varireal.cli", "check-params"], cwd=repo)
    assert "valid" in checked.stdout
    background = _shards(repo / "data/edits/background/feasible")
    dvc("repro", "-s", "prompts", cwd=repo)
    sets = [f"{stage}@weather-{feas}" for stage in ("edit", "filter") for feas in ("feasible", "infeasible")]
    dvc("repro", "-s", *sets, "gallery@weather", cwd=repo)
    _replace_line(repo / "params.yaml", "attr: ", "attr: weather")
    dvc("repro", "-s", "train", "evaluate", cwd=repo)

    accepted = read_table(repo / "data/synthetic/weather/feasible/manifest.parquet").query("accepted")
    assert len(accepted) and set(accepted["attribute"]) == {"weather"}
    assert set(accepted["value"]) <= {"light rain", "morning fog", "clear sunny noon", "light snowfall"}
    assert (repo / "reports/gallery/weather.png").is_file()
    assert yaml.safe_load((repo / "reports/train/params.yaml").read_text())["attr"] == "weather"
    assert "top1" in yaml.safe_load((repo / "reports/eval/metrics.json").read_text())
    # the other attributes' items are the same files: their code did not change
    dvc("repro", "-s", "edit@background-feasible", cwd=repo)
    assert _shards(repo / "data/edits/background/feasible") == background


def _python() -> str:
    import sys

    return sys.executable


def _replace_line(path: Path, start: str, new: str) -> None:
    lines = path.read_text().splitlines()
    [index] = [i for i, line in enumerate(lines) if line.startswith(start)]
    lines[index] = new
    path.write_text("\n".join(lines) + "\n")


def _merge_yaml(path: Path, block: str) -> None:
    path.write_text(yaml.safe_dump(merged(yaml.safe_load(path.read_text()), yaml.safe_load(block)), sort_keys=False))


def _shards(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((folder / "shards").glob("*.tar"))}
