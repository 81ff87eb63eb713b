"""`varireal settings`: what every stage of dvc.yaml will run with, resolved, before any model is loaded."""

from __future__ import annotations

import itertools
import json

import yaml
from pipeline_repo import REPO
from typer.testing import CliRunner

from varireal.cli import app

runner = CliRunner()


def _dvc_stage_names() -> set[str]:
    names = set()
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        matrix = stage.get("matrix")
        if not matrix:
            names.add(name)
            continue
        for values in itertools.product(*matrix.values()):
            names.add(f"{name}@{'-'.join(values)}")
    return names


def _settings(*overrides: str) -> dict:
    args = ["settings", "--json", "--params", str(REPO / "params.yaml")]
    for override in overrides:
        args += ["-S", override]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_has_one_flat_mapping_per_dvc_stage():
    settings = _settings()
    assert set(settings) == _dvc_stage_names()
    for values in settings.values():
        assert all(not isinstance(value, dict) for value in values.values())
    assert settings["filter@color-infeasible"]["expected_answers"] == ["yes", "yes", "no", "no"]
    assert settings["edit@color-feasible"]["feasibility"] == "feasible"


def test_overrides_and_the_dataset_reach_every_stage():
    settings = _settings("profile=paper", "dataset=stanford_cars")
    assert {values["dataset"] for values in settings.values()} == {"stanford_cars"}
    assert settings["masks"]["work_size"] == 1024
    assert settings["train"]["prefix"] == "car"
    lr = _settings("profile=paper", "train.paper.lr=5e-4")["train"]["lr"]
    assert lr == 5e-4


def test_a_bad_override_or_stage_is_named():
    result = runner.invoke(app, ["settings", "--params", str(REPO / "params.yaml"), "-S", "profile=gpu"])
    assert result.exit_code == 2 and "profile" in result.output
    result = runner.invoke(app, ["settings", "--params", str(REPO / "params.yaml"), "--stage", "edit@color"])
    assert result.exit_code == 2 and "no such stage" in result.output and "edit@color-feasible" in result.output
