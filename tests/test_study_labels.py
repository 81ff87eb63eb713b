"""Each run's label against what it recorded (varireal.study.labels), on commits of a small git repository."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from varireal.study.labels import LOCK, TRAIN_LOGGED, check_labels, read_at_revisions
from varireal.study.runs import Run, StudyError, flatten

PARAMS = {
    "profile": "tiny",
    "dataset": "demo",
    "attr": "background",
    "feas": "feasible",
    "protocol": {"tiny": "heldout_val"},
    "filter": {"tiny": {"show_answer": False}},
    "train": {"data": "synthetic_real", "seed": 0, "tiny": {"lr": 5.0e-4}},
}


def lock_for(params: dict) -> dict:
    """A dvc.lock as DVC writes it: each stage's params, dotted keys, mappings kept whole."""
    flat = flatten(params)
    return {
        "schema": "2.0",
        "stages": {
            "filter@background-feasible": {"params": {"params.yaml": {"filter.tiny": params["filter"]["tiny"]}}},
            "train": {
                "params": {
                    "params.yaml": {key: flat[key] for key in ("attr", "dataset", "feas", "train.data", "train.seed")}
                    | {"protocol.tiny": flat["protocol.tiny"], "train.tiny.lr": flat["train.tiny.lr"]}
                }
            },
        },
    }


def logged_for(params: dict, images: dict | None = None) -> dict:
    """reports/train/params.yaml as train logs it."""
    flat = flatten(params)
    return {
        "lr": flat["train.tiny.lr"],
        "data": flat["train.data"],
        "seed": flat["train.seed"],
        "profile": flat["profile"],
        "dataset": flat["dataset"],
        "attr": flat["attr"],
        "feas": flat["feas"],
        "protocol": flat["protocol.tiny"],
        "images": images or {"synthetic": 64, "real": 32},
    }


def git(repo, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def commit(repo, params: dict, lock: dict | None, logged: dict | None) -> str:
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for path, content in ((LOCK, lock), (TRAIN_LOGGED, logged)):
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.write_text(yaml.safe_dump(content))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "run")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    return tmp_path


def run_at(rev: str, params: dict, name: str = "main", metrics: dict | None = None) -> Run:
    return Run(name=name, rev=rev, params=flatten(params), metrics=metrics or {})


def with_changes(**changes) -> dict:
    tree = yaml.safe_load(yaml.safe_dump(PARAMS))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = tree
        for part in path:
            node = node[part]
        node[last] = value
    return tree


def test_a_run_whose_records_agree_with_its_params_passes(repo):
    rev = commit(repo, PARAMS, lock_for(PARAMS), logged_for(PARAMS))
    check_labels([run_at(rev, PARAMS)], repo)


def test_params_yaml_left_out_of_the_commit_is_refused_naming_the_run_and_both_values(repo):
    # README's trap: `dvc exp apply` an infeasible seed-1 run, then `git add dvc.lock reports` without params.yaml
    applied = with_changes(feas="infeasible", train__seed=1)
    rev = commit(repo, PARAMS, lock_for(applied), logged_for(applied))
    with pytest.raises(StudyError) as error:
        check_labels([run_at(rev, PARAMS)], repo)
    message = str(error.value)
    assert message.startswith("refusing to label runs by params their results were not made with:")
    assert f"main ({rev[:7]}):" in message
    assert "feas: 'feasible' in params.yaml, 'infeasible' in dvc.lock (stage train)" in message
    assert "train.seed: 0 in params.yaml, 1 in dvc.lock (stage train)" in message
    assert f"feas: 'feasible' in params.yaml, 'infeasible' in {TRAIN_LOGGED} (what train logged)" in message
    assert "git add params.yaml method.yaml dvc.lock reports" in message and "--exclude NAME" in message


def test_a_procedure_switch_is_checked_inside_a_stage_mapping(repo):
    shown = with_changes(filter__tiny__show_answer=True)
    rev = commit(repo, PARAMS, lock_for(shown), logged_for(PARAMS))
    with pytest.raises(
        StudyError,
        match=r"filter\.tiny\.show_answer: False in params\.yaml, True in dvc\.lock \(stage filter@background-feasible\)",
    ):
        check_labels([run_at(rev, PARAMS)], repo)


def test_params_of_method_yaml_are_checked_too(repo):
    lock = lock_for(PARAMS)
    lock["stages"]["masks"] = {"params": {"method.yaml": {"masks.box_threshold": 0.35}}}
    rev = commit(repo, PARAMS, lock, logged_for(PARAMS))
    run = run_at(rev, {**PARAMS, "masks": {"box_threshold": 0.4}})
    with pytest.raises(
        StudyError, match=r"masks\.box_threshold: 0\.4 in method\.yaml, 0\.35 in dvc\.lock \(stage masks\)"
    ):
        check_labels([run], repo)


def test_a_param_the_lock_recorded_but_params_yaml_lacks_is_a_disagreement(repo):
    rev = commit(repo, PARAMS, lock_for(PARAMS), None)
    params = with_changes()
    del params["train"]["tiny"]["lr"]
    with pytest.raises(StudyError, match=r"train\.tiny\.lr: absent in params\.yaml, 0\.0005 in dvc\.lock"):
        check_labels([run_at(rev, params)], repo)


def test_the_data_train_read_must_match_the_data_mode(repo):
    real_only = with_changes(train__data="real_only")
    rev = commit(repo, real_only, lock_for(real_only), logged_for(real_only, {"synthetic": 64, "real": 32}))
    with pytest.raises(
        StudyError,
        match=r"train\.data: 'real_only' in params\.yaml reads real images, but train read 32 real, 64 synthetic",
    ):
        check_labels([run_at(rev, real_only)], repo)
    rev = commit(repo, real_only, lock_for(real_only), logged_for(real_only, {"synthetic": 0, "real": 32}))
    check_labels([run_at(rev, real_only)], repo)


def test_the_checkpoint_recorded_must_be_the_one_the_protocol_chooses(repo):
    rev = commit(repo, PARAMS, lock_for(PARAMS), logged_for(PARAMS))
    with pytest.raises(
        StudyError,
        match=r"protocol\.tiny: 'heldout_val' in params\.yaml chooses the checkpoint 'best_val', but .* says 'best_test'",
    ):
        check_labels([run_at(rev, PARAMS, metrics={"checkpoint": "best_test"})], repo)


def test_every_mislabelled_run_is_named_at_once_and_older_runs_without_records_pass(repo):
    old = commit(repo, PARAMS, None, None)  # before dvc.lock and train's log: nothing to check against
    bad = commit(repo, PARAMS, lock_for(with_changes(attr="color")), None)
    worse = commit(repo, PARAMS, lock_for(with_changes(dataset="oxford_pets")), None)
    with pytest.raises(StudyError) as error:
        check_labels([run_at(old, PARAMS, "old"), run_at(bad, PARAMS, "exp-a"), run_at(worse, PARAMS, "exp-b")], repo)
    message = str(error.value)
    assert "old (" not in message
    assert f"exp-a ({bad[:7]}):\n    attr: 'background' in params.yaml, 'color' in dvc.lock" in message
    assert f"exp-b ({worse[:7]}):\n    dataset: 'demo' in params.yaml, 'oxford_pets' in dvc.lock" in message


def test_files_are_read_at_each_revision_in_one_batch(repo):
    first = commit(repo, PARAMS, {"a": 1}, None)
    second = commit(repo, PARAMS, {"a": 2}, {"seed": 3})
    texts = read_at_revisions(repo, [(first, LOCK), (second, LOCK), (first, TRAIN_LOGGED), (second, TRAIN_LOGGED)])
    assert yaml.safe_load(texts[(first, LOCK)]) == {"a": 1} and yaml.safe_load(texts[(second, LOCK)]) == {"a": 2}
    assert texts[(first, TRAIN_LOGGED)] is None and yaml.safe_load(texts[(second, TRAIN_LOGGED)]) == {"seed": 3}
