"""`varireal plan`'s whole-run seconds: stages timed from DVC's own output, fitted, multiplied out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.pipeline import stage_seconds, write_overrides, write_rates
from varireal.cost_plan import pipeline_work, render
from varireal.params import ParamsError
from varireal.run_time import StageCost, fit
from varireal.settings.whole import load_all_params

REPO = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).with_name("dvc"))


def test_each_stage_is_timed_from_its_running_line_to_the_next(tmp_path):
    """A real DVC repository of two stages that sleep 0.6 s and 0.2 s."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=tmp_path, check=True)
    sleep = "python -c \"import time, pathlib; time.sleep({s}); pathlib.Path('{out}').write_text('x')\""
    stages = {
        "slow": {"cmd": sleep.format(s=0.6, out="a.txt"), "outs": ["a.txt"]},
        "quick": {"cmd": sleep.format(s=0.2, out="b.txt"), "deps": ["a.txt"], "outs": ["b.txt"]},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": str(tmp_path)}
    start, seconds = stage_seconds([DVC, "repro"], tmp_path, env)
    assert list(seconds) == ["slow", "quick"]  # in the order DVC ran them
    assert seconds["slow"] >= 0.6 and seconds["quick"] >= 0.2
    assert seconds["slow"] > seconds["quick"] and start > 0
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"bad": {"cmd": "exit 3"}}}))
    with pytest.raises(RuntimeError, match=r"dvc repro failed in .*\(exit \d+\)"):
        stage_seconds([DVC, "repro"], tmp_path, env)


def test_the_line_through_two_runs_splits_fixed_from_per_unit_seconds():
    assert fit((10, 7.0), (30, 11.0), "candidates") == StageCost(5.0, 0.2, "candidates")
    assert fit((0, 3.0), (0, 5.0), "none") == StageCost(4.0, 0.0, "none")  # no units: all fixed
    assert fit((10, 5.0), (30, 4.0), "candidates") == StageCost(4.5, 0.0, "candidates")  # noise over work
    assert fit((10, 1.0), (30, 9.0), "steps").fixed == 0.0  # never a negative fixed part


def test_the_plan_adds_every_stage_at_its_units_and_dvcs_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing fetched: the demo's sizes come from its params
    params = load_all_params(REPO / "params.yaml")
    work = pipeline_work(
        params,
        dict.fromkeys(((a, f) for a in ("background", "color", "texture") for f in ("feasible", "infeasible")), 64.0),
    )
    assert work["masks"].count == 32 and work["evaluate"].count == 16 and work["edit@color-infeasible"].count == 64
    assert work["train"].unit == "optimizer steps" and work["train"].count > 0
    stages = {
        name: {"fixed": 2.0, "per_unit": 0.5 if w.unit == "candidates" else 0.0, "unit": w.unit}
        for name, w in work.items()
    }
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"stages": stages, "dvc_start_seconds": 1.5, "stages_measured": "here, today"}))
    out = render(params, rates, acceptance=1.0)  # every slot passes its first candidate: 64 per set
    # 21 stages x 2 s fixed + 12 candidate stages x 64 x 0.5 s + 1.5 s of DVC's start
    assert f"{21 * 2 + 12 * 32 + 1.5:>9.1f}  ({(21 * 2 + 12 * 32 + 1.5) / 60:.1f} min on the measured machine)" in out
    assert "the whole run (" in out and "here, today" in out
    del stages["evaluate"]
    rates.write_text(json.dumps({"stages": stages, "dvc_start_seconds": 1.5}))
    assert "has no timing for stage(s) evaluate; measure again" in render(params, rates)
    rates.write_text(json.dumps({"stages": {"fetch": {"fixed": 1.0}}, "dvc_start_seconds": 1.5}))
    with pytest.raises(ValueError, match=r"rates.json: expected `stages` of \{fixed, per_unit, unit\}"):
        render(params, rates)
    rates.write_text(json.dumps({"train_seconds_per_step": {"16": 0.5}}))  # no stages measured
    assert f"`python -m benchmarks.pipeline -S profile=tiny --rates-out {rates}`" in render(params, rates)


def test_overrides_land_in_the_file_that_holds_the_key(tmp_path):
    for name in ("params.yaml", "method.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    write_overrides(tmp_path, ["profile=paper", "method.yaml:fetch.demo.train_per_class=3"])
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["profile"] == "paper"
    assert yaml.safe_load((tmp_path / "method.yaml").read_text())["fetch"]["demo"]["train_per_class"] == 3
    with pytest.raises(ParamsError, match="fetch.demo.train_per_clas is not a key"):
        write_overrides(tmp_path, ["method.yaml:fetch.demo.train_per_clas=3"])


def test_stage_timings_merge_into_a_rates_file_of_their_own_profile_only(tmp_path):
    rates = tmp_path / "paper.json"
    rates.write_text(json.dumps({"profile": "paper", "seconds_per_candidate": {"color": 3.0}}))
    with pytest.raises(SystemExit, match="holds rates of profile paper; these are tiny's"):
        write_rates(rates, "tiny", {"models": StageCost(8.0, 0.0, "none")}, 1.5, [4, 12])
    write_rates(rates, "paper", {"models": StageCost(80.0, 0.0, "none")}, 1.5, [4, 12])
    merged = json.loads(rates.read_text())
    assert merged["seconds_per_candidate"] == {"color": 3.0}  # what the edit benchmark measured stays
    assert merged["stages"] == {"models": {"fixed": 80.0, "per_unit": 0.0, "unit": "none"}}
