"""The study's table from hand-made runs (varireal.study.table, whole, markdown, figure): no DVC, no training."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from varireal.io import read_table
from varireal.study import collect as collect_module
from varireal.study.collect import collect, runs_from_exp_show
from varireal.study.markdown import markdown
from varireal.study.runs import OPTIMISTIC, Run, StudyError, checkpoint_choice, flatten
from varireal.study.stats import paired, seed_mean
from varireal.study.table import all_cells, build_study
from varireal.study.whole import build_studies
from varireal.study.write import write_study

IMAGES = 40
PARAMS = {
    "profile": "tiny",
    "dataset": "demo",
    "attr": "background",
    "feas": "feasible",
    "train": {"data": "synthetic_real", "seed": 0, "tiny": {"lr": 5e-4, "epochs": 3}},
}
DEPS = {
    "data/models/lock.json": "aaa111",
    "data/real/demo": "bbb222.dir",
    "finetune": "ccc333.dir",
    "data/synthetic/background": "ddd444.dir",
    "data/train": "eee555.dir",
}


def correct_for(key: tuple, seed: int) -> np.ndarray:
    """A fixed, different right/wrong pattern per cell and seed."""
    rng = np.random.default_rng(zlib.crc32(repr((key, seed)).encode()))
    rate = {"feasible": 0.7, "infeasible": 0.6, "mixed": 0.65}.get(key[2], 0.5)
    return rng.random(IMAGES) < rate


def make_run(
    name: str,
    *,
    attr="background",
    feas="feasible",
    data="synthetic_real",
    seed=0,
    params=None,
    deps=None,
    correct=None,
    ids=None,
    metrics=None,
    baseline="main",
) -> Run:
    tree = {**PARAMS, "attr": attr, "feas": feas, "train": {**PARAMS["train"], "data": data, "seed": seed}}
    flat = {**flatten(tree), **(params or {})}
    correct = correct_for((attr, data, feas), seed) if correct is None else correct
    predictions = pd.DataFrame(
        {"id": ids or [f"img{i:03d}" for i in range(IMAGES)], "label": np.arange(IMAGES) % 4, "correct": correct}
    )
    return Run(
        name=name,
        rev=f"{zlib.crc32(name.encode()):040x}",
        params=flat,
        deps={**DEPS, **(deps or {})},
        predictions=predictions,
        metrics=metrics or {},
        baseline=baseline,
    )


def grid(
    feasibilities=("feasible", "infeasible"), seeds=(0, 1), attr="background", data="synthetic_real", **kwargs
) -> list[Run]:
    return [
        make_run(f"exp-{feas}-{seed}", attr=attr, feas=feas, data=data, seed=seed, **kwargs)
        for feas in feasibilities
        for seed in seeds
    ]


def test_a_grid_of_two_feasibilities_and_two_seeds_fills_those_cells():
    runs = grid()
    study = build_study(runs, resamples=500)
    cells = study.cells.set_index(["attr", "data", "feas"])
    for feas in ("feasible", "infeasible"):
        cell = cells.loc[("background", "synthetic_real", feas)]
        top1 = [100 * correct_for(("background", "synthetic_real", feas), s).mean() for s in (0, 1)]
        assert cell["seeds"] == 2 and cell["seed_list"] == "0 1"
        assert cell["top1"] == pytest.approx(np.mean(top1))
        half = 12.7062047 * np.std(top1, ddof=1) / math.sqrt(2)  # t_{0.975, 1}
        assert (cell["low"], cell["high"]) == pytest.approx((np.mean(top1) - half, np.mean(top1) + half))
    # every other cell of the paper's table is listed as missing, the baseline included
    assert len(study.missing) == len(all_cells()) - 2 == 3 * 2 * 3 + 1 - 2
    assert ("-", "real_only", "-") in study.missing and ("background", "synthetic_real", "mixed") in study.missing

    comparisons = study.comparisons.set_index(["attr", "data", "a", "b"])
    row = comparisons.loc[("background", "synthetic_real", "feasible", "infeasible")]
    a = np.stack([runs[0].predictions["correct"], runs[1].predictions["correct"]])
    b = np.stack([runs[2].predictions["correct"], runs[3].predictions["correct"]])
    expected = paired(a, b, resamples=500, seed=0)
    assert row["seeds"] == 2 and row["images"] == IMAGES
    assert row["difference"] == pytest.approx(expected.difference)
    assert (row["low"], row["high"], row["p_value"], row["mde"]) == pytest.approx(
        (expected.low, expected.high, expected.p_value, expected.mde)
    )
    assert row["p_holm"] == pytest.approx(row["p_value"])  # a family of one
    unpaired = comparisons.loc[("background", "synthetic_real", "feasible", "mixed")]
    assert unpaired["seeds"] == 0 and math.isnan(unpaired["p_value"]) and math.isnan(unpaired["p_holm"])


def test_holm_runs_over_the_comparisons_shown():
    runs = grid(("feasible", "infeasible", "mixed")) + grid(("feasible", "infeasible"), attr="color")
    study = build_study(runs, resamples=200)
    shown = study.comparisons.dropna(subset=["p_value"])
    assert len(shown) == 3
    p = np.sort(shown["p_value"].to_numpy())
    expected = np.minimum(1, np.maximum.accumulate(p * [3, 2, 1]))
    assert np.sort(shown["p_holm"].to_numpy()) == pytest.approx(np.sort(expected))


def test_seeds_pair_by_seed_not_by_position():
    runs = [
        make_run("f0", seed=0),
        make_run("f1", seed=1),
        make_run("f7", seed=7),
        make_run("i1", feas="infeasible", seed=1),
        make_run("i7", feas="infeasible", seed=7),
        make_run("i9", feas="infeasible", seed=9),
    ]
    row = build_study(runs, resamples=200).comparisons.iloc[0]
    assert (row["a"], row["b"], row["seeds"], row["seed_list"]) == ("feasible", "infeasible", 2, "1 7")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"params": {"dataset": "oxford_pets"}}, "param dataset: 'demo' in"),
        ({"params": {"profile": "paper"}}, "param profile"),
        ({"params": {"train.tiny.epochs": 5}}, "param train.tiny.epochs: 3 in"),
        ({"deps": {"data/models/lock.json": "fff999"}}, "dep data/models/lock.json"),
        ({"deps": {"finetune": "000000.dir"}}, "dep finetune"),
        ({"ids": [f"other{i}" for i in range(IMAGES)]}, "test split"),
    ],
)
def test_runs_that_differ_in_more_than_the_knobs_are_refused_naming_the_key(change, named):
    runs = grid()
    runs.append(make_run("odd-one", feas="infeasible", seed=2, **change))
    with pytest.raises(StudyError) as error:
        build_study(runs, resamples=100)
    message = str(error.value)
    assert named in message and "odd-one" in message
    assert "attr, feas, train.data, train.seed" in message and "--exclude" in message
    # the knobs themselves and the deps they select are not differences
    assert "param attr" not in message and "param feas" not in message and "param train.seed" not in message
    assert "data/synthetic" not in message and "data/train" not in message


def test_attributes_read_their_own_synthetic_set_and_are_not_refused():
    runs = grid() + [
        make_run("color", attr="color", deps={"data/synthetic/color": "777.dir", "data/synthetic/background": None})
    ]
    for run in runs[-1:]:
        run.deps = {k: v for k, v in run.deps.items() if v}
    study = build_study(runs, resamples=100)
    assert study.cells.set_index(["attr", "data", "feas"]).loc[("color", "synthetic_real", "feasible"), "seeds"] == 1


def test_the_baseline_pools_real_only_runs_whatever_their_attr_and_feas():
    runs = [
        make_run("r0", data="real_only", seed=0),
        make_run("r1", data="real_only", attr="color", feas="mixed", seed=1),
    ]
    study = build_study(runs, resamples=100)
    baseline = study.cells[study.cells["data"] == "real_only"].iloc[0]
    assert baseline["seeds"] == 2 and baseline["runs"] == "r0 r1"
    assert ("-", "real_only", "-") not in study.missing


def test_a_second_run_of_the_same_cell_and_seed_is_noted_and_left_out():
    runs = grid(("feasible",), (0,)) + [make_run("again", seed=0)]
    study = build_study(runs, notes=["experiment q: queued, left out"], resamples=100)
    assert (
        study.cells.set_index(["attr", "data", "feas"]).loc[("background", "synthetic_real", "feasible"), "seeds"] == 1
    )
    assert study.notes[0] == "experiment q: queued, left out"
    assert "seed 0: exp-feasible-0 and again are the same run (identical predictions)" in study.notes[1]


def test_table_md_lists_missing_cells_with_the_commands_that_fill_them(tmp_path):
    studies = build_studies(grid(), resamples=200)
    text = markdown(studies)
    assert "| attribute | data | feasibility | demo |" in text  # a column per dataset
    assert "| background | synthetic + real | feasible | " in text and "2 seeds" in text
    assert "| color | synthetic only | mixed | no run |" in text
    assert "| (none) | real only | | no run |" in text
    assert "feasible \u2212 infeasible | 2 |" in text and "no paired run" in text
    assert "- real-only baseline" in text and "- texture / synthetic only / mixed" in text
    assert (
        "dvc exp run --queue -S attr=texture -S train.data=synthetic_only -S feas=feasible,infeasible,mixed -S train.seed=0,1"
        in text
    )
    assert "dvc exp run --queue -S attr=background -S train.data=synthetic_real -S feas=mixed -S train.seed=0,1" in text
    assert "dvc exp run --queue -S train.data=real_only -S train.seed=0,1" in text
    assert "Queue them from the baseline commit (main" in text

    write_study(studies, tmp_path / "study")
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == [
        "claims.csv",
        "comparisons.csv",
        "figure.png",
        "table.csv",
        "table.md",
    ]
    assert (tmp_path / "study/table.md").read_text() == text
    table = read_table(tmp_path / "study/table.csv")
    assert len(table) == len(all_cells()) and table["seeds"].sum() == 4
    assert set(table["dataset"]) == {"demo"} and table["procedure"].str.contains("show_answer").all()
    assert len(read_table(tmp_path / "study/comparisons.csv")) == 3 * 2 * 2
    claims = read_table(tmp_path / "study/claims.csv")
    assert set(claims["claim"]) == {"feasibility", "background", "mixed", "texture"}
    with Image.open(tmp_path / "study/figure.png") as figure:
        assert figure.format == "PNG" and figure.width > 1000
    before = (tmp_path / "study/figure.png").read_bytes()
    write_study(studies, tmp_path / "study")
    assert (tmp_path / "study/figure.png").read_bytes() == before


def test_exp_show_json_gives_finished_runs_and_notes_the_others():
    def state(rev, name, seed, error=None):
        params = {"params.yaml": {"data": {**PARAMS, "train": {**PARAMS["train"], "seed": seed}}}}
        data = (
            None
            if error
            else {
                "rev": rev,
                "params": params,
                "deps": {"data/models/lock.json": {"hash": "aaa111", "size": 1, "nfiles": None}},
            }
        )
        return {"rev": rev, "name": name, "data": data, "error": {"msg": error} if error else None, "experiments": None}

    shown = [
        {**state("workspace", None, 5)},
        {
            **state("a" * 40, "main", 0),
            "experiments": [
                {"revs": [state("b" * 40, "exp-one", 1)], "executor": None, "name": "exp-one"},
                {"revs": [state("c" * 40, "exp-two", 2)], "executor": {"state": "queued"}, "name": "exp-two"},
                {
                    "revs": [state("d" * 40, "exp-bad", 3, error="params.yaml: not valid YAML")],
                    "executor": None,
                    "name": "exp-bad",
                },
            ],
        },
    ]
    runs, notes = runs_from_exp_show(shown)
    assert [(r.name, r.rev[0], r.params["train.seed"]) for r in runs] == [("main", "a", 0), ("exp-one", "b", 1)]
    assert runs[0].params["train.tiny.lr"] == 5e-4 and runs[0].model_lock == "aaa111"
    assert notes == [
        "experiment exp-two: queued, left out",
        "experiment exp-bad: no results (params.yaml: not valid YAML), left out",
    ]


def test_collect_leaves_out_excluded_runs_and_runs_without_predictions(monkeypatch):
    def state(rev, name, seed):
        params = {"params.yaml": {"data": {**PARAMS, "train": {**PARAMS["train"], "seed": seed}}}}
        return {
            "rev": rev,
            "name": name,
            "data": {"rev": rev, "params": params, "deps": {}},
            "error": None,
            "experiments": None,
        }

    shown = [
        {
            **state("a" * 40, "main", 0),
            "experiments": [
                {"revs": [state("b" * 40, "exp-one", 1)], "executor": None, "name": "exp-one"},
                {"revs": [state("c" * 40, "exp-two", 2)], "executor": None, "name": "exp-two"},
            ],
        }
    ]

    def read(repo, rev, name=None):
        if rev.startswith("c"):
            raise StudyError(f"{name} ({rev[:7]}): cannot read reports/eval/predictions.csv (not in the cache)")
        return pd.DataFrame({"id": ["x"], "label": [0], "correct": [True]})

    checked = []
    monkeypatch.setattr(collect_module, "exp_show", lambda repo, revs=(), all_branches=False: shown)
    monkeypatch.setattr(collect_module, "read_predictions", read)
    monkeypatch.setattr(collect_module, "check_labels", lambda runs, repo: checked.append([run.name for run in runs]))
    runs, notes = collect(".", exclude=("exp-one",))
    assert checked == [["main", "exp-two"]]  # every run but the excluded is checked against what it recorded
    assert [run.name for run in runs] == ["main"] and runs[0].predictions is not None
    assert notes == [
        "exp-one: excluded (--exclude)",
        "left out: exp-two (ccccccc): cannot read reports/eval/predictions.csv (not in the cache)",
    ]
    assert [run.name for run in collect(".", exclude=("aaaa",))[0]] == ["exp-one"]  # a rev prefix works too


# --- how each run's checkpoint was chosen ------------------------------------------------------------

PAPER = {"profile": "paper", "protocol.paper": "paper"}
BEST_TEST = {
    "checkpoint": "best_test",
    "checkpoint_note": "chosen on the test split, as the paper did: optimistic",
    "top1": 0.6,
}


@pytest.mark.parametrize(
    ("metrics", "params", "expected"),
    [
        (BEST_TEST, PAPER, "best_test"),
        ({"checkpoint": "final"}, PAPER, "final"),
        ({"checkpoint": "best_val"}, {"profile": "tiny", "protocol.tiny": "heldout_val"}, "best_val"),
        ({"top1": 0.6}, PAPER, "final"),  # before the key: protocol paper kept the final weights
        ({}, {"profile": "tiny", "protocol.tiny": "heldout_val"}, "best_val"),
        ({}, {"profile": "paper", "protocol.paper": "heldout_val"}, "best_val"),
        ({}, {"profile": "tiny"}, "best_val"),  # before the protocol param: held-out val
    ],
)
def test_the_checkpoint_choice_comes_from_metrics_json_or_for_older_runs_from_the_protocol(metrics, params, expected):
    assert checkpoint_choice(metrics, params, "run") == expected


def test_an_unknown_checkpoint_choice_is_refused_naming_the_run():
    run = make_run("odd", metrics={"checkpoint": "best"})
    with pytest.raises(
        StudyError,
        match=r"odd \([0-9a-f]{7}\): reports/eval/metrics\.json: checkpoint 'best'; expected one of best_test, final, best_val",
    ):
        build_study([run], resamples=100)


def test_runs_whose_checkpoints_were_chosen_differently_are_never_pooled_or_paired():
    # Same params and deps: only metrics.json says how the weights were chosen (an old run has no key).
    runs = grid(params=PAPER, metrics=BEST_TEST) + [make_run("old-final", feas="infeasible", seed=2, params=PAPER)]
    with pytest.raises(StudyError) as error:
        build_study(runs, resamples=100)
    message = str(error.value)
    assert (
        "  checkpoint: 'best_test' in exp-feasible-0, exp-feasible-1, exp-infeasible-0, exp-infeasible-1; 'final' in old-final"
        in message
    )
    assert "best_test: chosen on the test split" in message and "never pooled in a cell or paired" in message
    assert "--exclude" in message
    build_study(runs[:-1], resamples=100)  # without it the grid is one study


TABLE_HEADS = ("| attribute | data | feasibility", "| attribute | data | comparison", "| claim | verdict")


def test_tables_of_numbers_chosen_on_test_say_so_above_each_table(tmp_path):
    studies = build_studies(grid(params=PAPER, metrics=BEST_TEST), resamples=100)
    study = next(iter(studies.by.values()))
    assert study.context["checkpoint"] == "best_test: chosen on the test split, as the paper did: optimistic"
    lines = markdown(studies).splitlines()
    assert OPTIMISTIC == "checkpoint chosen on the test split, as the paper did: optimistic"
    warnings = [i for i, line in enumerate(lines) if OPTIMISTIC in line]
    tables = [i for i, line in enumerate(lines) if line.startswith(TABLE_HEADS)]
    assert len(warnings) == len(tables) == 3  # the cells, the comparisons, the claims
    for warning, table in zip(warnings, tables):
        assert warning < table and not any(line.startswith("|") for line in lines[warning:table])  # directly above it
    assert warnings[1] > tables[0]
    write_study(studies, tmp_path / "study")
    table = read_table(tmp_path / "study/table.csv")
    assert set(table.loc[table["seeds"] > 0, "checkpoint"]) == {"best_test"}


def test_tables_of_weights_chosen_on_val_or_final_carry_no_warning():
    for metrics, params in (
        ({"checkpoint": "best_val"}, {}),
        ({"checkpoint": "final"}, {"profile": "paper", "protocol.paper": "final"}),
    ):
        studies = build_studies(grid(params=params, metrics=metrics), resamples=100)
        study = next(iter(studies.by.values()))
        assert OPTIMISTIC not in markdown(studies) and study.context["checkpoint"].startswith(
            metrics["checkpoint"] + ": "
        )


def test_exp_show_metrics_carry_the_checkpoint_choice():
    def state(rev, name, metrics):
        params = {"params.yaml": {"data": {**PARAMS, "profile": "paper", "protocol": {"paper": "paper"}}}}
        data = {"rev": rev, "params": params, "deps": {}, "metrics": metrics}
        return {"rev": rev, "name": name, "data": data, "error": None, "experiments": None}

    shown = [
        {
            **state("a" * 40, "main", {}),
            "experiments": [
                {
                    "revs": [state("b" * 40, "exp-new", {"reports/eval/metrics.json": {"data": BEST_TEST}})],
                    "executor": None,
                    "name": "exp-new",
                },
                {
                    "revs": [state("c" * 40, "exp-old", {"reports/eval/metrics.json": {"data": {"top1": 0.5}}})],
                    "executor": None,
                    "name": "exp-old",
                },
            ],
        }
    ]
    runs, _notes = runs_from_exp_show(shown)
    assert [(run.name, run.checkpoint) for run in runs] == [
        ("main", "final"),
        ("exp-new", "best_test"),
        ("exp-old", "final"),
    ]


# --- datasets side by side, procedures as an axis -------------------------------------------------

PETS = {"params": {"dataset": "oxford_pets"}, "deps": {"data/real/demo": None, "data/real/oxford_pets": "fff.dir"}}


def pets_runs(feasibilities=("feasible", "infeasible"), seeds=(0, 1)) -> list[Run]:
    runs = [
        make_run(f"pets-{feas}-{seed}", feas=feas, seed=seed, baseline="study/oxford_pets", **PETS)
        for feas in feasibilities
        for seed in seeds
    ]
    for run in runs:
        run.deps = {path: value for path, value in run.deps.items() if value}
        # another dataset, another test split: 30 images, none shared with demo's
        run.predictions = run.predictions.iloc[:30].assign(id=[f"pet{i:03d}" for i in range(30)])
    return runs


def test_datasets_sit_side_by_side_each_cell_from_its_own_runs():
    demo, pets = grid(), pets_runs(("feasible",), (0, 1, 2))
    studies = build_studies(demo + pets, resamples=200)
    assert studies.datasets == ["demo", "oxford_pets"] and len(studies.procedures) == 1
    procedure = studies.procedures[0]
    pets_cell = studies.study(procedure, "oxford_pets").cells.set_index(["attr", "data", "feas"])
    top1 = [100 * run.predictions["correct"].mean() for run in pets]
    assert pets_cell.loc[("background", "synthetic_real", "feasible"), "top1"] == pytest.approx(np.mean(top1))
    assert pets_cell.loc[("background", "synthetic_real", "infeasible"), "seeds"] == 0  # demo's never fill it
    # pets has no infeasible run: its comparison stays unpaired, demo's is paired with demo's runs only
    pets_row = studies.study(procedure, "oxford_pets").comparisons.iloc[0]
    demo_row = studies.study(procedure, "demo").comparisons.iloc[0]
    assert (pets_row["seeds"], demo_row["seeds"], demo_row["images"]) == (0, 2, IMAGES)
    text = markdown(studies)
    row = next(line for line in text.splitlines() if line.startswith("| background | synthetic + real | feasible |"))
    demo_top1 = np.mean([100 * run.predictions["correct"].mean() for run in demo[:2]])
    assert row.startswith(f"| background | synthetic + real | feasible | {demo_top1:.1f} (")
    pets_summary = seed_mean(top1)
    assert row.endswith(f"| {pets_summary.mean:.1f} ({pets_summary.low:.1f} to {pets_summary.high:.1f}), 3 seeds |")
    assert "| test images | 40 | 30 |" in text and "| from | main | study/oxford_pets |" in text
    assert "### oxford_pets: the paper's claims" in text


def test_runs_of_another_dataset_may_differ_in_code_and_are_noted_not_refused():
    pets = pets_runs(("feasible",), (0,))
    pets[0].deps["finetune"] = "999.dir"
    studies = build_studies(grid() + pets, resamples=100)
    assert any("oxford_pets's runs differ from demo's in code finetune" in note for note in studies.notes)


SHOWN = "filter.tiny.show_answer"


def test_runs_differing_in_a_procedure_switch_are_refused_unless_compared():
    shown = grid(params={SHOWN: True}, baseline="study/demo-show_answer-true")
    for run in shown:
        run.name += "-shown"
    hidden = grid(params={SHOWN: False})
    with pytest.raises(StudyError) as error:
        build_studies(hidden + shown, resamples=100)
    message = str(error.value)
    assert "refusing to lay out runs of different procedures" in message
    assert f"param {SHOWN}: False in exp-feasible-0," in message and "True in exp-feasible-0-shown" in message
    assert f"--compare {SHOWN}" in message

    studies = build_studies(hidden + shown, compare=(SHOWN,), resamples=100, defaults=dict(hidden[0].params))
    # the reference's procedure (answer shown) first, each its own table; nothing pooled across them
    assert [dict(p)[SHOWN] for p in studies.procedures] == [True, False]
    for procedure, runs in zip(studies.procedures, (shown, hidden)):
        cell = studies.study(procedure, "demo").cells.set_index(["attr", "data", "feas"])
        assert cell.loc[("background", "synthetic_real", "feasible"), "runs"] == " ".join(r.name for r in runs[:2])
    text = markdown(studies)
    assert (
        f"## Procedure: {SHOWN}=true (the reference's)," in text and f"## Procedure: {SHOWN}=false (corrected)," in text
    )
    assert f"Not params.yaml's value (at HEAD) in these runs: {SHOWN}=true." in text
    survival = text[text.index("## Does each conclusion survive its corrections?") :]
    header = next(line for line in survival.splitlines() if line.startswith("| claim | dataset |"))
    assert (
        header == "| claim | dataset | show_answer=true (the reference's) | show_answer=false (corrected) | survives |"
    )
    assert len([line for line in survival.splitlines() if line.startswith("| feasible and infeasible")]) == 1


def test_compared_procedures_may_differ_in_pipeline_data_but_nothing_else():
    shown = grid(params={SHOWN: True}, deps={"data/edits/background/feasible": "new.dir"})
    for run in shown:
        run.name += "-shown"
    build_studies(grid(params={SHOWN: False}) + shown, compare=(SHOWN,), resamples=100)  # edits differ: expected
    shown[0].params["train.tiny.epochs"] = 9
    with pytest.raises(StudyError, match=r"param train\.tiny\.epochs: 3 in .*9 in exp-feasible-0-shown"):
        build_studies(grid(params={SHOWN: False}) + shown, compare=(SHOWN,), resamples=100)


def test_only_declared_switches_can_be_compared():
    with pytest.raises(StudyError, match=r"--compare train\.tiny\.lr: not a declared procedure switch of profile tiny"):
        build_studies(grid(), compare=("train.tiny.lr",), resamples=100)


def test_runs_of_different_profiles_are_never_laid_side_by_side():
    pets = pets_runs(("feasible",), (0,))
    pets[0].params["profile"] = "paper"
    with pytest.raises(
        StudyError, match=r"refusing to lay out side by side runs of different profiles:\n  param profile"
    ):
        build_studies(grid() + pets, resamples=100)


def test_the_figure_names_the_procedure_checkpoint_and_holm_and_keeps_no_run_off_the_baseline(tmp_path):
    from matplotlib.lines import Line2D

    from varireal.study.figure import NO_RUN_LABEL, draw_figure

    runs = grid(params={SHOWN: True}) + [
        make_run(f"r{s}", data="real_only", seed=s, params={SHOWN: True}) for s in (0, 1)
    ]
    studies = build_studies(runs, resamples=100)
    figure = draw_figure(studies, studies.procedures[0])
    figure.canvas.draw()
    title = figure._suptitle.get_text()
    assert f"{SHOWN}=true (the reference's)" in title and "Holm-adjusted" in title
    row_title = figure.subfigs[0]._suptitle.get_text()
    assert "protocol heldout_val" in row_title and "checkpoint best_val" in row_title
    cells_axes = figure.subfigs[0].axes[0]
    renderer = figure.canvas.get_renderer()
    baseline = next(
        line for line in cells_axes.get_lines() if line.get_linestyle() == "--" and isinstance(line, Line2D)
    )
    line_x = cells_axes.transData.transform((baseline.get_xdata()[0], 0))[0]
    labels = [text for text in cells_axes.texts if text.get_text().endswith(NO_RUN_LABEL)]
    assert len(labels) == 3 * 2 * 3 - 2  # every cell without runs but the two filled
    for label in labels:
        box = label.get_window_extent(renderer)
        assert not box.x0 <= line_x <= box.x1, f"{label.get_text()!r} overlaps the real-only line"


def test_a_comparison_with_no_discordant_pair_says_the_mde_assumes_one():
    same = correct_for(("background", "synthetic_real", "feasible"), 0)
    runs = [make_run("f", correct=same), make_run("i", feas="infeasible", correct=same)]
    text = markdown(build_studies(runs, resamples=100))
    row = next(line for line in text.splitlines() if "| feasible \u2212 infeasible | 1 |" in line)
    assert "| 0 / 0 |" in row and "(no discordant pair; one assumed)" in row


def test_exp_show_params_of_params_yaml_and_method_yaml_are_one_mapping():
    data = {
        "rev": "a" * 40,
        "params": {
            "params.yaml": {"data": {**PARAMS, "fetch": {"sources": {"stanford_cars": {"archive": None}}}}},
            "method.yaml": {"data": {"fetch": {"sources": {"oxford_pets": {"urls": []}}, "min_side": 32}}},
        },
        "deps": {},
    }
    runs, _notes = runs_from_exp_show(
        [{"rev": "a" * 40, "name": "main", "data": data, "error": None, "experiments": None}]
    )
    params = runs[0].params
    assert params["fetch.sources.stanford_cars.archive"] is None and params["fetch.sources.oxford_pets.urls"] == []
    assert params["fetch.min_side"] == 32 and params["train.seed"] == 0


def test_an_experiment_promoted_to_a_branch_is_one_run_named_by_the_branch():
    def state(rev, name, experiments=None):
        data = {"rev": rev, "params": {"params.yaml": {"data": PARAMS}}, "deps": {}}
        return {"rev": rev, "name": name, "data": data, "error": None, "experiments": experiments}

    promoted = {"revs": [state("b" * 40, "study-demo-x")], "executor": None, "name": "study-demo-x"}
    for order in ([("main", [promoted]), ("study/demo-x", None)], [("study/demo-x", None), ("main", [promoted])]):
        shown = [state("a" * 40 if name == "main" else "b" * 40, name, experiments) for name, experiments in order]
        runs, _notes = runs_from_exp_show(shown)
        assert sorted((run.name, run.baseline, run.rev[0]) for run in runs) == [
            ("main", "main", "a"),
            ("study/demo-x", "study/demo-x", "b"),
        ]
