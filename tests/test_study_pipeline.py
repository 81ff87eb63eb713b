"""`varireal grid`, `varireal study` and `varireal report` on real tiny experiments, in copies of the `repro` repo.

The module-scoped `grid`: the reproduced pipeline committed as HEAD (with a second dataset made
ready: the Oxford Pets stand-in archives of datasets_fixtures and curated lists for its breeds),
then docs/statistics.md's tiny grid (2 feasibilities x 2 seeds) queued by `varireal grid --queue`
and run. The feasible seed-0 experiment repeats HEAD (DVC skips it), so three of the four train:
15-20 s of training each, 1-1.5 minutes with the queue's set-up on 2 busy cores.

`procedures` goes on from it as the README's grid commands do: the shown-answer switch the other
way (its edits and filter once, as a branch, then two seeds of two feasibilities from it) and the
Pets stand-in (its whole pipeline once, as a branch): 6-8 minutes on 2 cores.
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
import yaml
from datasets_fixtures import pets_archives
from PIL import Image
from pipeline_repo import dvc, git, ran_stages, run

from varireal.io import read_table
from varireal.study.stats import paired

SHOWN = "filter.tiny.show_answer"
GRID = ["--attr", "background", "--data", "synthetic_real", "--feas", "feasible,infeasible", "--seeds", "0,1"]


def varireal(*args: str, cwd: Path, check: bool = True):
    return run([sys.executable, "-m", "varireal.cli", *args], cwd, check)


def set_param(repo: Path, dotted: str, value) -> None:
    """Set an existing key in whichever params file holds it (params.yaml or method.yaml beside it)."""
    *parents, last = dotted.split(".")
    for name in ("params.yaml", "method.yaml"):
        path = repo / name
        tree = yaml.safe_load(path.read_text()) if path.is_file() else {}
        node = tree
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = value
            path.write_text(yaml.safe_dump(tree, sort_keys=False))
            return
    raise AssertionError(f"{dotted}: in neither params.yaml nor method.yaml")


def get_param(repo: Path, dotted: str):
    for name in ("params.yaml", "method.yaml"):
        node = yaml.safe_load((repo / name).read_text()) if (repo / name).is_file() else {}
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def prepare_second_dataset(repo: Path, site: Path) -> None:
    """Pets from local stand-in archives (no download), prompts from curated lists for each dataset's
    classes (prompts.tiny.curated_file takes {dataset})."""
    _archives, expected = pets_archives(site)
    curated = repo / "tests-data/curated"
    curated.mkdir(parents=True)
    shutil.copy(repo / "varireal/curated/demo.yaml", curated / "demo.yaml")
    lists = yaml.safe_load((repo / "varireal/curated/demo.yaml").read_text())
    lists["dataset"] = "oxford_pets"
    lists["lists"]["color"] = {name: lists["lists"]["color"]["cat"] for name in expected.class_names}
    (curated / "oxford_pets.yaml").write_text(yaml.safe_dump(lists, sort_keys=False))
    set_param(repo, "fetch.sources.oxford_pets", {"urls": [], "checksums": [], "archive": str(site)})
    set_param(repo, "prompts.tiny.curated_file", "tests-data/curated/{dataset}.yaml")


@pytest.fixture(scope="module")
def grid(repro, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("study") / "repo"
    shutil.copytree(repro, repo, symlinks=True)
    prepare_second_dataset(repo, repo.parent / "pets-site")
    dvc("repro", cwd=repo)  # fetch and prompts read the changed params; their outputs, and so the rest, stay
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "dvc repro", cwd=repo)
    printed = varireal("grid", *GRID, "--queue", cwd=repo)
    (repo.parent / "grid.out").write_text(printed.stdout + printed.stderr)
    followed = dvc("exp", "run", "--run-all", cwd=repo).stdout  # it follows every queued run's log
    (repo.parent / "run-all.log").write_text(followed)
    return repo


def test_varireal_grid_prints_its_cost_first_then_queues_the_grid_of_head(grid):
    printed = (grid.parent / "grid.out").read_text()
    lines = printed.splitlines()
    assert lines[0] == "# varireal plan -S dataset=demo" and lines[1].startswith("plan: profile=tiny dataset=demo")
    sweep = "dvc exp run --queue -S attr=background -S feas=feasible,infeasible -S train.data=synthetic_real -S train.seed=0,1"
    assert lines.index("# demo: HEAD (main) is its baseline") < lines.index(sweep)
    assert f"queued: {sweep}" in lines  # and it ran: the experiments below


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
    assert sorted(p.name for p in out.iterdir()) == [
        "claims.csv",
        "comparisons.csv",
        "figure.png",
        "table.csv",
        "table.md",
    ]
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
    assert "| attribute | data | feasibility | demo |" in table
    assert "| background | synthetic + real | feasible | " in table and "2 seeds" in table
    claims = read_table(out / "claims.csv").set_index("row")
    row = claims.loc["background / synthetic + real: feasible \u2212 infeasible"]
    assert row["seeds"] == 2 and row["verdict"] in ("supported", "contradicted", "not decided")
    assert row["difference"] == pytest.approx(expected.difference)  # the same mean difference as the comparison
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
    assert get_param(repo, "evaluate.tiny.batch_size") == 32
    set_param(repo, "evaluate.tiny.batch_size", 16)
    dvc("exp", "save", "-n", "other-batch", cwd=repo)
    refused = varireal("study", cwd=repo, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "refusing to pool or pair runs" in refused.stderr
    assert "param evaluate.tiny.batch_size: 32 in main" in refused.stderr and "16 in other-batch" in refused.stderr
    assert "--exclude NAME" in refused.stderr  # the way out (tested in test_study_table)


def test_a_run_committed_with_the_wrong_params_yaml_is_refused_naming_both_values(grid, tmp_path):
    """The README trap: apply an experiment, commit dvc.lock and reports but not params.yaml."""
    repo = tmp_path / "repo"
    shutil.copytree(grid, repo, symlinks=True)
    infeasible = next(e for e in _experiments(repo) if (e["feas"], e["seed"]) == ("infeasible", 1))
    dvc("exp", "apply", infeasible["name"], cwd=repo)
    shutil.rmtree(repo / "reports/study", ignore_errors=True)  # an earlier test's table
    git("add", "dvc.lock", "reports", cwd=repo)
    git("commit", "-qm", "dvc repro", cwd=repo)
    assert "params.yaml" in git("status", "--short", cwd=repo).stdout  # left out, as the trap does
    refused = varireal("study", cwd=repo, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    head = git("rev-parse", "--short=7", "HEAD", cwd=repo).stdout.strip()
    assert f"main ({head}):" in refused.stderr
    assert "feas: 'feasible' in params.yaml, 'infeasible' in dvc.lock (stage train)" in refused.stderr
    assert "train.seed: 0 in params.yaml, 1 in dvc.lock (stage train)" in refused.stderr
    assert "'infeasible' in reports/train/params.yaml (what train logged)" in refused.stderr
    assert not (repo / "reports/study/table.md").exists()  # no table with a wrong label


def test_the_report_of_two_revisions_has_the_metrics_table_and_the_paired_line(grid, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(grid, repo, symlinks=True)
    # the workspace is HEAD: `dvc metrics diff --all` still shows top-1
    varireal("report", "--base", "HEAD", "--resamples", "200", "--out", "reports/same.md", cwd=repo)
    same = (repo / "reports/same.md").read_text()
    assert re.search(r"\| reports/eval/metrics\.json +\| top1 +\|", same), same
    page = (repo / "reports/same/plots.html").read_text()
    assert page.count("<svg") >= 5 and "<script" not in page  # drawn, nothing to fetch or run
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "data:image/png;base64," in page  # the galleries, inlined

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
    assert "[pr/plots.html](pr/plots.html)" in text


# --- the procedure as an axis and a second dataset, made as the printed grid commands make them -------


def _run_printed(lines: list[str], repo: Path) -> str:
    """Run the shell lines `varireal grid` printed (comments, the run-all and the study line left to
    the caller); returns what the commands printed."""
    out = []
    for line in lines:
        if not line or line.startswith("#") or line.startswith(("varireal study", "dvc exp run --run-all")):
            continue
        result = run(["bash", "-c", line], repo)
        out.append(result.stdout + result.stderr)
    return "\n".join(out)


def _first(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


@pytest.fixture(scope="module")
def procedures(grid, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("procedures") / "repo"
    shutil.copytree(grid, repo, symlinks=True)
    shown = varireal("grid", *GRID, "--switch", f"{SHOWN}=false,true", cwd=repo).stdout.splitlines()
    pets = varireal(
        "grid",
        "--dataset",
        "oxford_pets",
        "--attr",
        "background",
        "--data",
        "synthetic_real",
        "--feas",
        "feasible",
        "--seeds",
        "0",
        cwd=repo,
    ).stdout.splitlines()
    (repo.parent / "printed.txt").write_text("\n".join(shown + ["", *pets]))
    # from the first baseline that is not HEAD (HEAD's grid was queued and run by the `grid` fixture)
    baselines = _run_printed(shown[_first(shown, f"# dataset=demo, {SHOWN}=true") :], repo)
    baselines += _run_printed(pets[_first(pets, "# dataset=oxford_pets") :], repo)
    (repo.parent / "baselines.log").write_text(baselines)
    followed = dvc("exp", "run", "--run-all", cwd=repo).stdout
    (repo.parent / "run-all.log").write_text(followed)
    return repo


def test_switch_and_dataset_baselines_run_once_and_their_experiments_only_retrain(procedures):
    printed = (procedures.parent / "printed.txt").read_text()
    assert "dvc exp run --temp -n study-demo-show_answer-true -S filter.tiny.show_answer=true" in printed
    assert "dvc exp run --temp -n study-oxford_pets -S dataset=oxford_pets" in printed
    branches = git("branch", "--format=%(refname:short)", cwd=procedures).stdout.split()
    assert sorted(branches) == ["main", "study/demo-show_answer-true", "study/oxford_pets"]
    assert git("branch", "--show-current", cwd=procedures).stdout.strip() == "main"  # the lines came back
    # from the branches: the shown-answer grid retrains 3 runs (seed 0 feasible is the baseline), pets' 0;
    # nothing before train (evaluate may come from the run cache: tiny's judge passes the same edits)
    followed = ran_stages((procedures.parent / "run-all.log").read_text())
    assert [stage for stage in followed if stage != "evaluate"] == ["train"] * 3, followed
    # each baseline ran its pipeline once: pets all of it, the shown answer from the stages that read it
    ran = ran_stages((procedures.parent / "baselines.log").read_text())
    assert ran.count("train") == 2 and ran.count("fetch") == 1 and ran.count("filter@background-feasible") == 2


def test_one_table_per_procedure_with_both_datasets_and_a_verdict_per_claim(procedures):
    result = varireal("study", "--all-branches", "--compare", SHOWN, "--resamples", "500", cwd=procedures)
    out = procedures / "reports/study"
    assert sorted(p.name for p in out.glob("figure*.png")) == [
        "figure-show_answer-false.png",
        "figure-show_answer-true.png",
    ]
    table = (out / "table.md").read_text()
    sections = table.split("## Procedure: ")[1:]
    assert [section.split(",")[0] for section in sections] == [
        f"{SHOWN}=true (the reference's)",
        f"{SHOWN}=false (corrected)",
    ]
    assert f"Not params.yaml's value (at HEAD) in these runs: {SHOWN}=true." in sections[0]
    for section in sections:
        assert "| attribute | data | feasibility | demo | oxford_pets |" in section
    pets_cell = next(
        line for line in sections[1].splitlines() if line.startswith("| background | synthetic + real | feasible |")
    )
    assert pets_cell.endswith("(1 seed) |")  # pets' one run, beside demo's two seeds
    assert "2 seeds" in pets_cell
    cells = read_table(out / "table.csv")
    filled = cells[cells["seeds"] > 0].groupby(["procedure", "dataset"]).size().to_dict()
    assert sorted(filled.values()) == [1, 2, 2] and len(filled) == 3  # pets only under the corrected procedure
    claims = read_table(out / "claims.csv")
    row = claims[claims["row"] == "background / synthetic + real: feasible \u2212 infeasible"]
    by_procedure = row[row["dataset"] == "demo"].set_index("procedure")
    assert len(by_procedure) == 2 and set(by_procedure["seeds"]) == {2}
    assert set(by_procedure["verdict"]) <= {"supported", "contradicted", "not decided"}
    # an open verdict says what would decide it; a decided one says nothing more
    assert (by_procedure["decide"].fillna("") != "").tolist() == (by_procedure["verdict"] == "not decided").tolist()
    survival = table[table.index("## Does each conclusion survive its corrections?") :]
    rows = [line for line in survival.splitlines() if line.startswith("| ") and "demo" in line]
    assert len(rows) == 4  # one per claim
    assert all(line.rstrip(" |").rsplit("| ", 1)[-1] in ("yes", "no", "not decided") for line in rows)
    assert "runs:" in table and "study/oxford_pets" in table and "study/demo-show_answer-true" in table
    assert result.returncode == 0

    refused = varireal("study", "--all-branches", cwd=procedures, check=False)
    assert refused.returncode == 1 and f"--compare {SHOWN}" in refused.stderr
