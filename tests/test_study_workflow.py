"""The pull-request workflow (.github/workflows/pr-report.yml), linted offline.

check-jsonschema validates it against GitHub's workflow schema, which ships inside the
package (`--builtin-schema vendor.github-workflows`: no download); the rest checks what the
schema cannot: the steps the report needs, in order, and the expressions they use.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github/workflows/pr-report.yml"
CONTEXTS = {"github", "env", "secrets", "runner", "steps", "job", "matrix", "vars", "inputs"}


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["report"]["steps"]


def _index(steps: list[dict], needle: str) -> int:
    hits = [i for i, step in enumerate(steps) if needle in step.get("run", "") or needle in step.get("uses", "")]
    assert hits, f"no step runs or uses {needle!r}"
    return hits[0]


def test_the_workflow_is_valid_against_githubs_schema():
    result = lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_linter_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("    steps:\n", "    stepz:\n", 1))
    result = lint(broken)
    assert result.returncode == 1 and "'stepz' was unexpected" in result.stdout


def test_it_runs_on_pull_requests_on_a_cpu_runner(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert list(triggers) == ["pull_request"]
    job = workflow["jobs"]["report"]
    assert job["runs-on"] == "ubuntu-latest"
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_the_steps_set_up_from_the_lock_reproduce_report_and_comment(workflow):
    steps = _steps(workflow)
    order = [
        _index(steps, needle)
        for needle in (
            "actions/checkout@v4",
            "sh tools/uv.sh sync --frozen",
            "dvc repro --pull --allow-missing",
            'varireal report --base "origin/${{ github.base_ref }}"',
            "iterative/setup-cml@v2",
            "cml comment create reports/pr.md",
        )
    ]
    assert order == sorted(order)
    assert steps[0]["with"]["fetch-depth"] == 0  # the base branch is there to diff against
    comment = steps[_index(steps, "cml comment create")]
    assert comment["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


def test_the_remote_comes_from_secrets_and_only_when_set(workflow):
    assert workflow["env"]["DVC_REMOTE_URL"] == "${{ secrets.DVC_REMOTE_URL }}"
    steps = _steps(workflow)
    remote = steps[_index(steps, "dvc remote add --local")]
    assert remote["if"] == "${{ env.DVC_REMOTE_URL != '' }}"
    pulled = steps[_index(steps, "dvc repro --pull --allow-missing")]
    assert pulled["if"] == remote["if"]
    # without a remote both revisions are reproduced, the base one sharing the cache
    base = steps[_index(steps, "git worktree add")]
    assert base["if"] == "${{ env.DVC_REMOTE_URL == '' }}" and "dvc cache dir --local" in base["run"]
    assert _index(steps, "git worktree add") < _index(steps, "varireal report")


def test_every_expression_names_a_known_context():
    expressions = re.findall(r"\$\{\{(.*?)\}\}", WORKFLOW.read_text())
    assert expressions
    for expression in expressions:
        names = set(re.findall(r"(?<![\w.'])([a-z_]+)\.", expression))
        assert names and names <= CONTEXTS, expression
