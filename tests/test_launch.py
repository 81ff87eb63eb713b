"""Several processes per stage (varireal.launch): the launcher command, shares of the work, and
real torchrun runs on CPU (gloo) that write what one process writes."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from pipeline_repo import REPO, clone, dvc, ran_stages, set_params
from test_finetune_data import make_study
from test_finetune_train import POOL, TINY, tiny_clip  # noqa: F401  (fixture)

from varireal.cpu_pins import CPU_PINS
from varireal.finetune.lora import read_adapter
from varireal.finetune.train import train
from varireal.io import read_table
from varireal.launch import LaunchError, Ranks, launch_command
from varireal.params import ParamsError, read_raw
from varireal.settings.whole import load_all_params

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]


# --- the command and the shares -------------------------------------------------------------------


def test_one_process_runs_as_is_and_more_start_torchrun():
    assert launch_command(1, "stages.masks", [], env={}) is None
    assert launch_command(2, "stages.edit", ["color", "infeasible"], env={}) == [
        *TORCHRUN,
        "--standalone",
        "-m",
        "stages.edit",
        "color",
        "infeasible",
    ]
    # a torchrun worker never starts another launcher
    assert launch_command(2, "stages.edit", ["color", "infeasible"], env={"LOCAL_RANK": "0", "WORLD_SIZE": "2"}) is None


def test_several_nodes_start_one_torchrun_per_node_with_srun():
    env = {"VARIREAL_NODES": "3", "SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "gpu07,gpu08,gpu09", "PATH": ""}
    command = launch_command(8, "stages.train", [], env=env)
    assert command[1:6] == ["--nodes", "3", "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
    torchrun = command[6:]
    assert torchrun[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "8"]
    assert torchrun[5:] == [
        "--nnodes",
        "3",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "gpu07:29500",
        "--rdzv-id",
        "77",
        "-m",
        "stages.train",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VARIREAL_NODES": "2"}, "VARIREAL_NODES=2 needs a SLURM allocation"),
        ({"VARIREAL_NODES": "two"}, "VARIREAL_NODES='two': expected a whole number"),
        (
            {"VARIREAL_NODES": "2", "SLURM_JOB_ID": "1", "SLURM_JOB_NODELIST": "gpu[01-02]", "PATH": ""},
            "needs `scontrol`",
        ),
    ],
)
def test_a_layout_that_cannot_start_is_named(env, message):
    with pytest.raises(LaunchError, match=message.replace("[", r"\[")):
        launch_command(2, "stages.edit", ["color", "feasible"], env=env)


def test_ranks_take_every_shard_once_in_order():
    shares = [Ranks(rank, 3).mine(8) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert sorted(sum(shares, [])) == list(range(8))
    assert Ranks().mine(3) == [0, 1, 2]


def test_processes_must_be_a_positive_count(tmp_path):
    settings = read_raw(REPO / "params.yaml")
    settings["edit"]["processes"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(ParamsError, match=r"edit\.processes = 0"):
        load_all_params(tmp_path / "params.yaml")


# --- real runs ------------------------------------------------------------------------------------


def _torchrun(script: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.run(
        [*TORCHRUN, "--standalone", *script], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900
    )


def _ddp_spec(settings, real_dir: Path, sets: dict, clip: Path, tmp_path: Path) -> dict:
    """What tests/ddp_train.py trains: the run "one" trained in-process, as run "two" under torchrun."""
    return {
        "settings": settings.model_dump(mode="json"),
        "real_dir": str(real_dir),
        "sets": {k: str(v) for k, v in sets.items()},
        "clip": str(clip),
        "root": str(tmp_path / "two"),
        "checkpoints": str(tmp_path / "ckpt"),
    }


def _reports(tmp_path: Path) -> tuple[list[dict], list[pd.DataFrame]]:
    """Runs "one" and "two": their metrics.json and training-loss tables."""
    runs = [tmp_path / run / "reports/train" for run in ("one", "two")]
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    return metrics, [pd.read_csv(run / "plots/metrics/train/loss.tsv", sep="\t") for run in runs]


@pytest.mark.slow  # starts processes
def test_two_ddp_processes_train_as_one_and_a_killed_pair_resumes(tmp_path, tiny_clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_dir, sets = make_study(tmp_path / "study")
    # LoRA dropout and CutMix off: they draw per process, so with them two processes train an
    # equally valid run, not the same one. Everything else is the same step, split in two.
    settings = TINY.model_copy(
        update={
            "epochs": 3,
            "eval_every": 2,
            "checkpoint_every": 2,
            "processes": 2,
            "lora": TINY.lora.model_copy(update={"dropout": 0.0}),
        }
    )
    one = train(
        settings,
        real_dir=real_dir,
        synthetic_dirs=sets,
        feas="mixed",
        model_dir=tiny_clip,
        prefix="",
        out_dir=tmp_path / "one/train",
        report_dir=tmp_path / "one/reports/train",
        checkpoint_dir=None,
    )
    spec = _ddp_spec(settings, real_dir, sets, tiny_clip, tmp_path)
    spec_path = tmp_path / "spec.json"
    helper = str(REPO / "tests" / "ddp_train.py")

    spec_path.write_text(json.dumps({**spec, "kill_after_checkpoint": True}))
    killed = _torchrun([helper, str(spec_path)], tmp_path)
    assert killed.returncode != 0
    assert torch.load(next((tmp_path / "ckpt").glob("state-*.pt")), weights_only=True)["step"] == 2
    assert not (tmp_path / "two/train/adapter.safetensors").exists()
    spec_path.write_text(json.dumps({**spec, "kill_after_checkpoint": False}))
    resumed = _torchrun([helper, str(spec_path)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "train: resuming at step 2 of 6" in resumed.stdout

    # Stated tolerance: float sums in another order (two halves + all-reduce) -> 1e-5 relative.
    metrics, losses = _reports(tmp_path)
    assert metrics[1]["kept"]["step"] == metrics[0]["kept"]["step"]
    assert metrics[1]["kept"]["val_top1"] == metrics[0]["kept"]["val_top1"]
    assert metrics[1]["kept"]["val_loss"] == pytest.approx(metrics[0]["kept"]["val_loss"], rel=1e-5)
    assert losses[1]["step"].tolist() == list(range(1, 7))
    assert losses[1]["loss"].tolist() == pytest.approx(losses[0]["loss"].tolist(), rel=1e-5)
    tensors, _ = read_adapter(one.adapter)
    two, _ = read_adapter(tmp_path / "two/train/adapter.safetensors")
    # Adam turns a float-order difference in a near-zero gradient into up to ~1e-5 of weight (6.5e-6
    # measured): 5e-5 is 1 % of one step at lr 5e-3, and weights are ~0.02-0.2.
    assert max(float((tensors[name] - two[name]).abs().max()) for name in tensors) <= 5e-5


@pytest.mark.slow  # starts processes
def test_two_ddp_processes_train_pooled_batches_as_one_and_choose_the_same_test_checkpoint(
    tmp_path, tiny_clip, monkeypatch
):
    """The reference's batches under DDP: a pass's last batch of 2 rows gives each rank one, a rank's
    part may hold one kind only (weighted by the whole step's counts), and rank 0 alone scores test."""
    monkeypatch.chdir(tmp_path)
    real_dir, sets = make_study(tmp_path / "study")
    settings = POOL.model_copy(
        update={"eval_every": 3, "processes": 2, "lora": TINY.lora.model_copy(update={"dropout": 0.0})}
    )
    one = train(
        settings,
        real_dir=real_dir,
        synthetic_dirs=sets,
        feas="mixed",
        protocol="paper",
        model_dir=tiny_clip,
        prefix="",
        out_dir=tmp_path / "one/train",
        report_dir=tmp_path / "one/reports/train",
    )
    spec = {
        **_ddp_spec(settings, real_dir, sets, tiny_clip, tmp_path),
        "kill_after_checkpoint": False,
        "protocol": "paper",
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    two = _torchrun([str(REPO / "tests" / "ddp_train.py"), str(tmp_path / "spec.json")], tmp_path)
    assert two.returncode == 0, two.stderr
    metrics, losses = _reports(tmp_path)
    assert metrics[1]["checkpoint"] == metrics[0]["checkpoint"] == "best_test"
    assert metrics[1]["kept"]["step"] == metrics[0]["kept"]["step"] == one.kept.step
    assert metrics[1]["kept"]["test_top1"] == metrics[0]["kept"]["test_top1"]
    assert losses[1]["step"].tolist() == list(range(1, 8))
    assert losses[1]["loss"].tolist() == pytest.approx(
        losses[0]["loss"].tolist(), rel=1e-5
    )  # the tolerance stated above
    tensors, _ = read_adapter(one.adapter)
    other, _ = read_adapter(tmp_path / "two/train/adapter.safetensors")
    assert max(float((tensors[name] - other[name]).abs().max()) for name in tensors) <= 5e-5


def kill_when_recorded(
    repo: Path, stage: list[str], records: Path, count: int, pattern: str = "*.json"
) -> dict[str, int]:
    """Start a stage by hand, SIGKILL it (the launcher and every rank) once `count` files match
    `pattern`; the finished files' mtimes."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", *stage],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(records.glob(pattern))) < count:
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGKILL)  # torchrun's ranks are in the stage's process group
    worker.wait()
    return {p.name: p.stat().st_mtime_ns for p in records.glob(pattern)}


def test_killed_two_process_stages_resume_on_repro_and_write_the_bytes_of_one(repro, tmp_path, monkeypatch):
    repo = clone(tmp_path)
    shutil.copytree(repro / "data/models", repo / "data/models", dirs_exist_ok=True)  # DVC skips `models`
    set_params(
        repo,
        {
            "fetch.demo.train_per_class": 3,  # 12 real images: enough to kill mid-stage, quick to finish
            "masks.tiny.batch_size": 1,  # 12 batches, 6 per rank: the kill lands mid-stage
            "edit.tiny.batch_size": 2,
            "edit.tiny.shard_images": 2,  # 6 shards, 3 per rank: the kill lands between two of them
            **{f"{section}.processes": 2 for section in ("masks", "edit", "filter")},
        },
    )
    # torchrun gives each rank one thread (OMP_NUM_THREADS=1), but every stage process pins its threads
    # (varireal.cpu_pins): torch's CPU kernels split their sums by thread count, so without the pin the
    # bytes would follow the threads per process. Asked for one thread here, the ranks still run the pinned two.
    one_thread = {"OMP_NUM_THREADS": "1"}
    dvc("repro", "fetch", "models", cwd=repo, env=one_thread)
    train_images = len(read_table(repo / "data/real/demo/manifest.csv").query("split == 'train'"))

    records = repo / "data/masks/demo/records"
    done = kill_when_recorded(repo, ["stages.masks"], records, 3)
    assert 3 <= len(done) < train_images
    out = dvc("repro", "masks", "prompts", cwd=repo, env=one_thread).stdout
    assert "stages.masks: 2 processes per node" in out
    assert {name: (records / name).stat().st_mtime_ns for name in done} == done  # finished masks are kept
    edits = repo / "data/edits/background/feasible"
    done = kill_when_recorded(repo, ["stages.edit", "background", "feasible"], edits / "shards", 1, "edits-*.tar")
    assert 1 <= len(done) < 6
    out = dvc("repro", "filter@background-feasible", cwd=repo, env=one_thread).stdout
    assert ran_stages(out) == ["edit@background-feasible", "filter@background-feasible"]
    assert "stages.edit: 2 processes per node" in out and "stages.filter: 2 processes per node" in out
    assert {name: (edits / "shards" / name).stat().st_mtime_ns for name in done} == done
    assert not list((repo / "data").rglob(".tmp-*"))
    assert len(list((edits / "shards").glob("edits-*.tar"))) == 6

    # The same stages uninterrupted, in one process (this test session's, pinned as a stage is), write the same bytes.
    one = tmp_path / "one"
    shutil.copytree(repo, one, ignore=shutil.ignore_patterns("masks", "edits", "synthetic", "reports", ".dvc"))
    set_params(one, {f"{section}.processes": 1 for section in ("masks", "edit", "filter")})
    monkeypatch.chdir(one)
    assert torch.get_num_threads() == int(CPU_PINS["OMP_NUM_THREADS"])
    import stages.edit
    import stages.filter
    import stages.masks

    stages.masks.main()
    stages.edit.main(["background", "feasible"])
    monkeypatch.setattr(sys, "argv", ["stages.filter", "background", "feasible"])
    stages.filter.main()
    for output in ("data/masks/demo", "data/edits/background/feasible", "data/synthetic/background/feasible"):
        _assert_same_tree(repo / output, one / output)
    for report in ("reports/masks.json", "reports/filter/background-feasible.json"):
        assert (repo / report).read_bytes() == (one / report).read_bytes()


def _assert_same_tree(left: Path, right: Path) -> None:
    files = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file())
    assert files, left
    _, mismatch, errors = filecmp.cmpfiles(left, right, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors, (left, mismatch, errors)
