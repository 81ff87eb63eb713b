"""`varireal grid` (varireal.study.grid): the baselines, the commands that fill the grid, the cost first."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from varireal.study.collect import params_at
from varireal.study.grid import Grid, baselines, cost_lines, from_options, script, sweep_lines
from varireal.study.runs import StudyError

REPO = Path(__file__).resolve().parents[1]
HEAD = {"profile": "tiny", "dataset": "demo", "filter.tiny.show_answer": False, "protocol.tiny": "heldout_val"}
SHOWN = "filter.tiny.show_answer"
# What `varireal plan` prints that the grid's total reads (the rest of a plan is passed through).
PLAN = """plan: profile=tiny dataset={dataset}
  total                 2.00 device-hours (masks, the judge and training are not in the rates file)
  the study grid, one seed (3 attributes x 3 feasibilities x 2 data + real only = 19 runs): 38.0 GPU-hours
"""


def test_the_full_grid_is_readmes_two_sweeps():
    grid = from_options(
        HEAD,
        [],
        "0,1,2",
        "background,color,texture",
        "feasible,infeasible,mixed",
        "synthetic_real,synthetic_only,real_only",
        [],
    )
    assert grid.datasets == ("demo",) and grid.cells == 19
    assert sweep_lines(grid) == [
        "dvc exp run --queue -S attr=background,color,texture -S feas=feasible,infeasible,mixed "
        "-S train.data=synthetic_real,synthetic_only -S train.seed=0,1,2",
        "dvc exp run --queue -S train.data=real_only -S train.seed=0,1,2",
    ]


def test_head_is_the_baseline_of_its_own_dataset_and_procedure_the_rest_become_branches():
    grid = Grid(
        datasets=("demo", "oxford_pets"),
        seeds=(0, 1),
        feasibilities=("feasible", "infeasible"),
        attrs=("background",),
        data=("synthetic_real",),
        switches=((SHOWN, (False, True)),),
    )
    found = baselines(grid, HEAD)
    assert [(b.dataset, b.changes, b.at_head) for b in found] == [
        ("demo", {}, True),
        ("demo", {SHOWN: True}, False),
        ("oxford_pets", {"dataset": "oxford_pets"}, False),
        ("oxford_pets", {"dataset": "oxford_pets", SHOWN: True}, False),
    ]
    lines = script(grid, HEAD, "main", branches={"main", "study/oxford_pets-show_answer-false"})
    sweep = "dvc exp run --queue -S attr=background -S feas=feasible,infeasible -S train.data=synthetic_real -S train.seed=0,1"
    text = "\n".join(lines)
    # HEAD's experiments are queued as they are; another procedure runs its pipeline once, as a branch
    assert text.startswith(f"# demo: HEAD (main) is its baseline\n{sweep}\n\n")
    assert (
        "dvc exp run --temp -n study-demo-show_answer-true -S filter.tiny.show_answer=true\n"
        "dvc exp branch study-demo-show_answer-true study/demo-show_answer-true\n"
        f"git switch study/demo-show_answer-true\n{sweep}\ngit switch main\n"
    ) in text
    # a branch made before is reused, not run again
    assert (
        f"its baseline is the branch study/oxford_pets-show_answer-false\ngit switch study/oxford_pets-show_answer-false\n{sweep}"
        in text
    )
    assert "-n study-oxford_pets-show_answer-false" not in text
    assert "git switch -" not in lines  # dvc's queue moves HEAD itself: back by name
    detached = script(grid, HEAD, "abc1234", branches={"main"})
    assert "git switch --detach abc1234" in detached and "varireal study --rev abc1234" in detached[-1]
    assert lines[-2].startswith("dvc exp run --run-all")
    assert lines[-1] == (
        "varireal study --rev main --rev study/demo-show_answer-true --rev study/oxford_pets-show_answer-false "
        f"--rev study/oxford_pets-show_answer-true --compare {SHOWN}"
    )


def test_the_cost_comes_first_from_each_baselines_plan():
    grid = Grid(datasets=("demo", "oxford_pets"), seeds=(0, 1, 2))
    asked = []

    def plan(changes):
        asked.append(dict(changes))
        return PLAN.format(dataset=changes["dataset"])

    lines = cost_lines(grid, HEAD, plan)
    assert asked == [{"dataset": "demo"}, {"dataset": "oxford_pets"}]
    assert lines[0] == "# varireal plan -S dataset=demo" and lines[1] == "plan: profile=tiny dataset=demo"
    assert "# the grid: 2 datasets x 1 procedures x 19 cells x 3 seeds = 114 runs" in lines
    # 38 GPU-hours per 19-run seed: 2 per run, x 19 cells x 3 seeds x 2 datasets; editing: pets' baseline only
    assert any(line.startswith("# about 228.0 GPU-hours of fine-tuning and 2.0 device-hours") for line in lines)
    unreadable = cost_lines(grid, HEAD, lambda changes: "plan: something else\n")
    assert "# hours: see each plan above (a figure was not found in its text)" in unreadable


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["imagenet"], "0", "background", "feasible", "real_only", []), "--dataset imagenet: expected one of demo"),
        (([], "0,x", "background", "feasible", "real_only", []), "--seeds '0,x': expected a comma list of integers"),
        (([], "0,0", "background", "feasible", "real_only", []), "--seeds '0,0': expected distinct seeds"),
        (
            ([], "0", "shape", "feasible", "real_only", []),
            "--attr 'shape': expected a comma list of background, color, texture",
        ),
        (
            ([], "0", "background", "feasible", "real_only", ["train.tiny.lr=1,2"]),
            "KEY a procedure switch of profile tiny",
        ),
        (([], "0", "background", "feasible", "real_only", [f"{SHOWN}"]), f"--switch '{SHOWN}': expected KEY=VALUE"),
    ],
)
def test_bad_options_are_refused_naming_them(args, message):
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        from_options(HEAD, *args)


def test_switch_values_are_read_as_yaml():
    grid = from_options(
        HEAD, [], "0", "background", "feasible", "real_only", [f"{SHOWN}=true,false", "protocol.tiny=final,heldout_val"]
    )
    assert grid.switches == ((SHOWN, (True, False)), ("protocol.tiny", ("final", "heldout_val")))
    assert len(grid.procedures()) == 4


def test_varireal_grid_prints_the_plan_then_the_commands(tmp_path):
    """The command as a user runs it, in a git repository holding the project's params.yaml."""
    repo = tmp_path / "repo"
    repo.mkdir()
    files = [name for name in ("params.yaml", "method.yaml") if (REPO / name).is_file()]
    for name in files:
        shutil.copy(REPO / name, repo / name)
    for command in (["init", "-q", "-b", "main"], ["add", *files], ["commit", "-qm", "params"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *command], cwd=repo, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "varireal.cli", "grid", "--seeds", "0,1", "--feas", "feasible,infeasible"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    head = params_at(repo)
    assert lines[0] == f"# varireal plan -S dataset={head['dataset']}" and lines[1].startswith("plan: profile=")
    assert lines.index("# the grid: 1 datasets x 1 procedures x 13 cells x 2 seeds = 26 runs") < lines.index(
        f"# {head['dataset']}: HEAD (main) is its baseline"
    )
    assert lines[-1] == "varireal study --rev main"
    refused = subprocess.run(
        [sys.executable, "-m", "varireal.cli", "grid", "--switch", "train.tiny.lr=1,2"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "procedure switch" in refused.stderr
