"""`varireal report`'s checkpoint lines: how each side chose its weights, read from a small git repository."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from test_study_labels import git  # the same throwaway repos' git

from varireal.study import report as report_module
from varireal.study.report import checkpoint_at, checkpoint_section, paired_section
from varireal.study.runs import OPTIMISTIC, StudyError

PAPER_PARAMS = {"profile": "paper", "protocol": {"tiny": "heldout_val", "paper": "paper"}}


def write_run(repo, params: dict, metrics: dict | None) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    path = repo / "reports/eval/metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if metrics is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps(metrics))


@pytest.fixture
def repo(tmp_path):
    """A commit from before metrics.json's `checkpoint` key (protocol paper kept the final weights then)."""
    git(tmp_path, "init", "-q")
    write_run(tmp_path, PAPER_PARAMS, {"top1": 0.5})
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "old")
    return tmp_path


def test_each_side_reads_its_own_metrics_json_and_params(repo):
    base = git(repo, "rev-parse", "HEAD")
    write_run(repo, PAPER_PARAMS, {"top1": 0.6, "checkpoint": "best_test", "checkpoint_note": "..."})
    assert (checkpoint_at(None, repo), checkpoint_at(base, repo)) == ("best_test", "final")
    write_run(repo, {"profile": "tiny", "protocol": {"tiny": "heldout_val"}}, None)
    assert checkpoint_at(None, repo) == "best_val"  # no metrics yet: the protocol decides
    write_run(repo, PAPER_PARAMS, {"checkpoint": "best"})
    with pytest.raises(
        StudyError, match=r"reports/eval/metrics\.json at the workspace: checkpoint 'best'; expected one of"
    ):
        checkpoint_at(None, repo)


def test_the_optimistic_line_names_the_side_chosen_on_test():
    lines = checkpoint_section("best_test", "final", "main")
    assert lines[0] == f"**{OPTIMISTIC}** (this revision)"
    assert (
        lines[-1].startswith("Checkpoint: this revision best_test (chosen on the test split")
        and "main final (" in lines[-1]
    )
    assert checkpoint_section("best_test", "best_test", "main")[0] == f"**{OPTIMISTIC}** (this revision and main)"
    assert checkpoint_section("final", "best_test", "main")[0] == f"**{OPTIMISTIC}** (main)"
    assert not any(OPTIMISTIC in line for line in checkpoint_section("best_val", "final", "main"))


def test_paired_numbers_need_the_same_checkpoint_choice_and_carry_the_line_when_chosen_on_test(repo, monkeypatch):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"id": [f"i{k}" for k in range(30)], "label": np.arange(30) % 3, "correct": rng.random(30) < 0.6}
    )
    (repo / "reports/eval/predictions.csv").write_text(table.to_csv(index=False))
    monkeypatch.setattr(
        report_module, "read_predictions", lambda repo, rev, name=None: table.assign(correct=~table["correct"])
    )

    refused = paired_section("main", "a" * 40, repo, 200, 0, ("best_test", "final"))
    assert refused[0].startswith("Not paired: the checkpoints were chosen differently (best_test here, final in main)")
    optimistic = paired_section("main", "a" * 40, repo, 200, 0, ("best_test", "best_test"))
    assert optimistic[0] == f"**{OPTIMISTIC}**" and optimistic[-1].startswith("**This revision \u2212 main:")
    plain = paired_section("main", "a" * 40, repo, 200, 0, ("best_val", "best_val"))
    assert len(plain) == 1 and plain[0].startswith("**This revision \u2212 main:")
