"""`varireal study` and `varireal report` on real tiny experiments, in a copy of the `repro` repo.

One module-scoped grid: the reproduced pipeline committed as HEAD, then docs/statistics.md's tiny
grid (2 feasibilities x 2 seeds) queued with DVC's sweep syntax and run. The feasible seed-0
experiment repeats HEAD (DVC skips it), so three of the four train: 15-20 s of training each,
1-1.5 minutes with the queue's set-up on 2 busy cores. The tests themselves take about 100 s.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from pathlib import Path

import dvc.api as dvc_api
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pipeline_repo import dvc, git, ran_stages, run

from varireal.io import read_table
from varireal.study.stats import paired


def varireal(*args: str, cwd: Path, check: bool = True):
    return run([sys.executable, "-m", "varireal.cli", *args], cwd, check)


@pytest.fixture(scope="module")
def grid(repro, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("study") / "repo"
    shutil.copytree(repro, repo, symlinks=True)
    git("add", "-A", cwd=repo)
    git(
        "commit", "-qm", "dvc repro", "--allow-empty", cwd=repo
    )  # empty when the committed dvc.lock was reproduced exactly
    dvc("exp", "run", "--queue", "-S", "feas=feasible,infeasible", "-S", "train.seed=0,1", cwd=repo)
    followed = dvc("exp", "run", "--run-all", cwd=repo).stdout  # it follows every queued run's log
    (repo.parent / "run-all.log").write_text(followed)
    return repo


def test_grid_runs_retrain_only(grid):
    # feasible seed 0 repeats HEAD: nothing runs; the other three train and evaluate, nothing else
    followed = (grid.parent / "run-all.log").read_text()
    assert ran_stages(followed) == ["evaluate"] * 3 + ["train"] * 3, followed


def _experiments(repo: Path) -> list[dict]:
    """(name, rev, feas, seed) of every experiment of HEAD."""
    shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    out = []
    for entry in shown[1]["experiments"] or []:
        state = entry["revs"][0]
        params = state["data"]["params"]["params.yaml"]["data"]
        out.append(
            {"name": entry["name"], "rev": state["rev"], "feas": params["feas"], "seed": params["train"]["seed"]}
        )
    return out


def _correct(repo: Path, rev: str) -> np.ndarray:
    text = dvc_api.read("reports/eval/predictions.csv", repo=str(repo), rev=rev)
    return pd.read_csv(io.StringIO(text))["correct"].to_numpy(dtype=bool)


def test_a_queued_grid_of_two_feasibilities_and_two_seeds_gives_a_complete_table(grid):
    experiments = _experiments(grid)
    assert sorted((e["feas"], e["seed"]) for e in experiments) == [
        ("feasible", 0),
        ("feasible", 1),
        ("infeasible", 0),
        ("infeasible", 1),
    ]

    result = varireal("study", "--resamples", "2000", cwd=grid)
    out = grid / "reports/study"
    assert sorted(p.name for p in out.iterdir()) == ["comparisons.csv", "figure.png", "table.csv", "table.md"]
    cells = read_table(out / "table.csv").set_index(["attr", "data", "feas"])
    for feas in ("feasible", "infeasible"):
        cell = cells.loc[("background", "synthetic_real", feas)]
        assert cell["seeds"] == 2 and cell["seed_list"] == "0 1"
        runs = [e for e in experiments if e["feas"] == feas]
        top1 = [100 * _correct(grid, e["rev"]).mean() for e in sorted(runs, key=lambda e: e["seed"])]
        assert cell["top1"] == pytest.approx(np.mean(top1))
    assert (cells["seeds"] > 0).sum() == 2  # the other cells are listed, not filled

    comparison = (
        read_table(out / "comparisons.csv")
        .set_index(["attr", "data", "a", "b"])
        .loc[("background", "synthetic_real", "feasible", "infeasible")]
    )
    by = {(e["feas"], e["seed"]): _correct(grid, e["rev"]) for e in experiments}
    expected = paired(
        np.stack([by["feasible", 0], by["feasible", 1]]),
        np.stack([by["infeasible", 0], by["infeasible", 1]]),
        resamples=2000,
        seed=0,
    )
    assert comparison["seeds"] == 2 and comparison["images"] == 16
    assert (comparison["difference"], comparison["low"], comparison["high"], comparison["p_value"]) == pytest.approx(
        (expected.difference, expected.low, expected.high, expected.p_value)
    )

    table = (out / "table.md").read_text()
    assert "| background | synthetic + real | " in table and "2 seeds" in table
    assert "## No run yet" in table and "- real-only baseline" in table
    assert "dvc exp run --queue -S train.data=real_only -S train.seed=0,1" in table
    # HEAD is the feasible seed-0 run as well: noted, counted once
    assert re.search(r"seed 0: main and \S+ are the same run \(identical predictions\)", table), table
    assert "are the same run" in result.stderr
    with Image.open(out / "figure.png") as figure:
        assert figure.format == "PNG" and figure.width > 1000


def test_study_refuses_runs_that_differ_in_another_setting(grid, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(grid, repo, symlinks=True)
    # a run recorded with HEAD's knobs and seed but another evaluation batch size (`exp save`
    # records the workspace as an experiment without training: the check reads params, not results)
    params = repo / "params.yaml"
    text = params.read_text()
    assert text.count("tiny: {batch_size: 32,") == 1  # evaluate's tiny block
    params.write_text(text.replace("tiny: {batch_size: 32,", "tiny: {batch_size: 16,"))
    dvc("exp", "save", "-n", "other-batch", cwd=repo)
    refused = varireal("study", cwd=repo, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "refusing to pool or pair runs" in refused.stderr
    assert "param evaluate.tiny.batch_size: 32 in main" in refused.stderr and "16 in other-batch" in refused.stderr
    assert "--exclude NAME" in refused.stderr  # the way out (tested in test_study_table)


def test_the_report_of_two_revisions_has_the_metrics_table_and_the_paired_line(grid, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(grid, repo, symlinks=True)
    infeasible = next(e for e in _experiments(repo) if (e["feas"], e["seed"]) == ("infeasible", 1))
    dvc("exp", "apply", infeasible["name"], cwd=repo)  # the workspace: another revision's results
    varireal("report", "--base", "HEAD", "--resamples", "2000", cwd=repo)
    text = (repo / "reports/pr.md").read_text()
    head = git("rev-parse", "HEAD", cwd=repo).stdout.strip()

    assert text.startswith(f"# Pipeline report: this revision against HEAD ({head[:7]})")
    assert "| Path" in text and "reports/eval/metrics.json" in text and "top1" in text  # dvc metrics diff --md
    new, old = _correct(repo, infeasible["rev"]), _correct(repo, head)
    expected = paired(new, old, resamples=2000, seed=0)
    line = next(line for line in text.splitlines() if line.startswith("**This revision \u2212 HEAD"))
    assert f"{expected.difference:+.2f} points of test top-1** on the same 16 test images" in line
    assert (
        f"interval {expected.low:+.2f} to {expected.high:+.2f}" in line
        and f"McNemar p = {expected.p_value:.3g}" in line
    )
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
        with Image.open(repo / "reports" / image) as picture:
            assert picture.format == "PNG"
    assert "pr/reports-train-plots-metrics-train-loss.png" in text and "pr/reports-eval-per-class.png" in text
    assert "No gallery differs from HEAD." in text  # training changed nothing upstream
