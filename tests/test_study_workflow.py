"""The pull-request workflow (.github/workflows/pr-report.yml), linted offline.

check-jsonschema validates it against GitHub's workflow schema, which ships inside the
package (`--builtin-schema vendor.github-workflows`: no download); the rest checks what the
schema cannot: the steps the report needs, in order, and the expressions they use.
"""

from __future__ import annotations

import os
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
            "actions/checkout@",
            "sh tools/uv.sh sync --frozen",
            "dvc repro --pull --allow-missing",
            'varireal report --base "origin/${{ github.base_ref }}"',
            "iterative/setup-cml@",
            "cml comment update",
        )
    ]
    assert order == sorted(order)
    assert steps[0]["with"]["fetch-depth"] == 0  # the base branch is there to diff against
    comment = steps[_index(steps, "cml comment update")]
    assert comment["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


def test_one_comment_per_pull_request_is_updated_not_one_added_per_push(workflow):
    steps = _steps(workflow)
    commands = [line for step in steps for line in step.get("run", "").splitlines()]
    assert not [line for line in commands if "cml comment create" in line]
    update = next(line for line in commands if line.startswith("cml comment update"))
    # the watermark finds this workflow's comment again; --target=pr keeps it on the pull request
    assert '--watermark-title="pr-report"' in update and "--target=pr" in update
    assert update.endswith("reports/pr.md")


def test_every_action_is_pinned_to_a_commit_and_cml_to_a_version(workflow):
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)@(\S+)(.*)", text)
    assert {name for name, _sha, _comment in uses} == {
        "actions/checkout",
        "actions/setup-python",
        "iterative/setup-cml",
    }
    for name, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}@{ref}: not a full commit sha"
        assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{name}: the tag it pins is not named"
    cml = _steps(workflow)[_index(_steps(workflow), "iterative/setup-cml@")]
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(cml["with"]["version"]))


def test_without_a_remote_unchanged_outputs_come_from_the_base_runs_cache_not_the_run_cache(workflow):
    text = WORKFLOW.read_text()
    # persist outputs are never restored from the run cache: the comment must not promise it
    assert "come from the run cache" not in text and "never restores" in text
    steps = _steps(workflow)
    base, own = _index(steps, "git worktree add"), _index(steps, "dvc checkout --allow-missing")
    assert base < own < _index(steps, "varireal report")
    run = steps[own]["run"].splitlines()
    assert run.index("dvc checkout --allow-missing") < run.index("dvc repro")  # checked out, then only changes run
    assert "dvc status" in run  # the log says what reruns
    assert steps[own]["if"] == "${{ env.DVC_REMOTE_URL == '' }}"


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


# --- the no-remote steps, run as written on a two-stage pipeline -----------------------------------

TOY_DVC_YAML = """stages:
  slow:
    cmd: mkdir -p slow && cp slow.txt slow/out.txt && echo ran >> ran-slow.log
    deps: [slow.txt]
    outs:
      - slow:
          persist: true
  fast:
    cmd: cat slow/out.txt fast.txt > fast-out.txt && echo ran >> ran-fast.log
    deps: [slow, fast.txt]
    outs: [fast-out.txt]
"""


def _sh(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=full, capture_output=True, text=True)
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result


def _no_remote_steps(workflow: dict) -> list[str]:
    """The run scripts of the steps taken without a remote, from the base branch's to the report's."""
    steps = _steps(workflow)
    chosen = [step["run"] for step in steps if step.get("if") == "${{ env.DVC_REMOTE_URL == '' }}"]
    return [script.replace("origin/${{ github.base_ref }}", "main") for script in chosen]


def test_without_a_remote_the_pull_request_reruns_only_the_stages_it_changed(workflow, tmp_path):
    """A pull request that changes only the last stage: CI, with an empty cache, reproduces the base
    branch, then the steps as written rerun that stage alone; without `dvc checkout` the persist
    stage would run again (DVC does not restore persist outputs from the run cache)."""
    author = tmp_path / "author"
    author.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    (author / "dvc.yaml").write_text(TOY_DVC_YAML)
    (author / "slow.txt").write_text("slow\n")
    (author / "fast.txt").write_text("fast\n")
    (author / ".gitignore").write_text("*.log\n")
    _sh(
        "git init -q -b main && dvc init -q && dvc repro -q && git add -A && git commit -qm base"
        " && git switch -qc pr && echo changed > fast.txt && dvc repro -q && git commit -qam pr",
        author,
        env,
    )
    for with_checkout in (True, False):
        runner = tmp_path / f"runner-{with_checkout}"
        _sh(
            f"git clone -q --no-local {author} {runner} && cd {runner} && git checkout -q pr && git branch -q main origin/main",
            tmp_path,
            env,
        )
        steps = _no_remote_steps(workflow)
        if not with_checkout:
            steps[-1] = "dvc repro"
        for script in steps:
            _sh(
                script,
                runner,
                {**env, "RUNNER_TEMP": str(tmp_path / f"temp-{with_checkout}"), "GITHUB_WORKSPACE": str(runner)},
            )
        assert (runner / "fast-out.txt").read_text() == "slow\nchanged\n"
        ran_slow = (runner / "ran-slow.log").exists()
        assert ran_slow is not with_checkout, "with dvc checkout the unchanged persist stage must not rerun"
        assert (runner / "ran-fast.log").read_text() == "ran\n"
