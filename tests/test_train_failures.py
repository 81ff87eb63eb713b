"""A training run that fails keeps the last good outputs; disk errors name their path; a checkpoint is
optional: varireal.finetune.train, varireal.finetune.checkpoint, varireal.io.staged_directory (tiny CLIP, CPU)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from test_finetune_data import make_study
from test_finetune_train import TINY, _train_to, tiny_clip  # noqa: F401  (fixture)

import varireal.finetune.train as training
from stages import run_stage
from varireal.io import atomic_path, read_table, staged_directory

SETTINGS = TINY.model_copy(update={"checkpoint_every": 2})  # 4 steps: one checkpoint, at step 2
OTHER = SETTINGS.model_copy(update={"lr": 1e-3})  # a second run that, finished, would change every byte


def _full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write() raises it: naming no file


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _outputs(root: Path) -> dict[str, bytes]:
    """Every byte of the train stage's outputs, and the names beside them (no staging folder may stay)."""
    files = {
        f"{folder}/{name}": data for folder in ("reports", "train") for name, data in _files(root / folder).items()
    }
    return {**files, "names beside train/": "\n".join(sorted(os.listdir(root))).encode()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_clip) -> Path:  # noqa: F811
    """A workspace after one good run: study/, train/ (adapter, selection), reports/train/, ckpt/."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # dvclive looks for a DVC repo from the working directory
        _train_to(root, make_study(root / "study"), tiny_clip, SETTINGS, root / "ckpt")
    return root


def _study(root: Path) -> tuple[Path, dict[str, Path]]:
    study = root / "study"
    return study / "real", {feas: study / "synthetic" / "background" / feas for feas in ("feasible", "infeasible")}


def _with_a_bad_image(trained: Path, tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, Path]]:
    """A copy of the study with one real training image that does not decode."""
    shutil.copytree(trained / "study", tmp_path / "study")
    real_dir, sets = _study(tmp_path)
    manifest = read_table(real_dir / "manifest.csv")
    (real_dir / manifest.loc[manifest["split"] == "train", "path"].iloc[0]).write_bytes(b"not an image")
    return real_dir, sets


def _with_a_full_disk_at_step_3(trained: Path, tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, Path]]:
    real_step, steps = training.train_step, []

    def full_at_step_3(*args):
        steps.append(len(steps))
        if len(steps) == 3:  # after steps 1-2 and val at step 2 were logged
            raise _full_disk()
        return real_step(*args)

    monkeypatch.setattr(training, "train_step", full_at_step_3)
    return _study(trained)


@pytest.mark.parametrize(
    "failing, error",
    [
        (_with_a_bad_image, "cannot decode image"),
        (_with_a_full_disk_at_step_3, "No space left on device"),
    ],
    ids=["bad image", "full disk mid-run"],
)
def test_a_failed_run_leaves_the_last_reports_and_adapter_byte_for_byte(
    trained, tiny_clip, tmp_path, monkeypatch, failing, error
):  # noqa: F811
    monkeypatch.chdir(trained)
    before = _outputs(trained)
    assert {
        "reports/train/metrics.json",
        "reports/train/params.yaml",
        "reports/train/plots/metrics/train/loss.tsv",
        "train/adapter.safetensors",
        "train/selection.csv",
    } <= before.keys()
    study = failing(trained, tmp_path, monkeypatch)
    with pytest.raises((OSError, ValueError), match=error):
        _train_to(trained, study, tiny_clip, OTHER, None)
    assert _outputs(trained) == before


def test_an_enospc_writing_the_adapter_names_the_adapter_and_keeps_the_last_outputs(
    trained, tiny_clip, monkeypatch, capsys
):  # noqa: F811
    monkeypatch.chdir(trained)
    before = _outputs(trained)
    real_write = Path.write_bytes

    def full_disk_for_the_adapter(path: Path, data: bytes) -> int:
        if path.name.startswith(".tmp-adapter.safetensors."):  # varireal.io.atomic_path's temporary file
            raise _full_disk()
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk_for_the_adapter)
    with pytest.raises(SystemExit) as stopped:
        run_stage(lambda: _train_to(trained, _study(trained), tiny_clip, OTHER, None))
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    # the path a user knows (not the staging folder's), then the cause
    assert err.startswith(f"error: {trained / 'train' / 'adapter.safetensors'}: No space left on device\n"), err
    assert _outputs(trained) == before  # the reports were complete, the selection written: none moved in


@pytest.mark.parametrize("fault", ["diverged", "too long"])
def test_a_diverged_or_too_long_run_stops_with_one_line_and_keeps_the_last_outputs(
    trained, tiny_clip, monkeypatch, capsys, fault
):  # noqa: F811
    monkeypatch.chdir(trained)
    before = _outputs(trained)
    if fault == "diverged":
        monkeypatch.setattr(training, "train_step", lambda *args: float("nan"))
        settings, expected = OTHER, "error: train loss is nan at step 1: the run diverged; lower train.<profile>.lr"
    else:  # a schedule of 10^12 steps, timed on its first three
        settings = OTHER.model_copy(update={"steps": 10**12, "max_hours": 1.0})
        expected = "error: train: the run would take about "
    with pytest.raises(SystemExit) as stopped:
        run_stage(lambda: _train_to(trained, _study(trained), tiny_clip, settings, None))
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and err.startswith(expected) and len(err.splitlines()) == 2, err
    if fault == "too long":
        assert "999,999,999,997 steps left" in err and "max_hours = 1" in err
    assert _outputs(trained) == before


def test_a_full_disk_under_dvclive_names_the_reports_folder(trained, tiny_clip, monkeypatch):  # noqa: F811
    import dvclive.live

    monkeypatch.chdir(trained)
    before = _outputs(trained)
    real_dump, calls = dvclive.live.dump_json, []

    def full_at_the_third_summary(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise _full_disk()
        return real_dump(*args, **kwargs)

    monkeypatch.setattr(dvclive.live, "dump_json", full_at_the_third_summary)
    with pytest.raises(OSError) as raised:
        _train_to(trained, _study(trained), tiny_clip, OTHER, None)
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(trained / "reports" / "train"))
    assert _outputs(trained) == before


@pytest.mark.parametrize("breaking", ["stream", "folder"])
def test_a_checkpoint_that_cannot_be_written_is_a_warning_and_training_goes_on(
    trained, tiny_clip, tmp_path, monkeypatch, capsys, breaking
):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    checkpoints = tmp_path / "ckpt"
    if breaking == "stream":  # what torch's file writer raises for a full disk

        def failing_save(*args, **kwargs):
            raise RuntimeError("basic_ios::clear: iostream error")

        monkeypatch.setattr(torch, "save", failing_save)
        cause = "RuntimeError: basic_ios::clear: iostream error"
    else:  # a folder that cannot be made (even root cannot make one inside a file)
        (tmp_path / "blocked").write_text("a file, not a folder")
        checkpoints = tmp_path / "blocked" / "ckpt"
        cause = f"{checkpoints}: Not a directory"
    result = _train_to(tmp_path, _study(trained), tiny_clip, SETTINGS, checkpoints)
    err = capsys.readouterr().err
    assert re.search(
        rf"train: warning: could not write checkpoint {checkpoints}/state-\w+\.pt \({re.escape(cause)}", err
    ), err
    assert "training goes on" in err
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # no half-written file either
    # the run is the undisturbed one, to the byte
    assert result.adapter.read_bytes() == (trained / "train/adapter.safetensors").read_bytes()
    assert json.loads((tmp_path / "reports/train/metrics.json").read_text()) == json.loads(
        (trained / "reports/train/metrics.json").read_text()
    )


# --- the staging folder ----------------------------------------------------------------------


def test_a_staged_directory_replaces_its_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "reports" / "train"
    target.mkdir(parents=True)
    (target / "metrics.json").write_text("old")
    with pytest.raises(KeyError), staged_directory(target) as staging:
        (staging / "metrics.json").write_text("new, half done")
        raise KeyError("any failure")
    assert _files(tmp_path) == {"reports/train/metrics.json": b"old"}
    with staged_directory(target) as staging:
        (staging / "plots").mkdir()
        (staging / "plots" / "loss.tsv").write_text("step\tloss\n")
    assert _files(tmp_path) == {"reports/train/plots/loss.tsv": b"step\tloss\n"}  # the old file went with its folder


def test_a_killed_run_leaves_a_staging_dir_the_next_run_clears(tmp_path):
    reports = tmp_path / "reports"
    target = reports / "train"
    target.mkdir(parents=True)
    (target / "metrics.json").write_text("last good")
    (reports / ".train.staging-4242").mkdir()  # SIGKILL while training
    (reports / ".train.staging-4242" / "metrics.json").write_text("half")
    (reports / ".train-other.staging-1").mkdir()  # another output's: not this one's to clear
    with staged_directory(target) as staging:
        assert sorted(p.name for p in reports.iterdir()) == sorted([".train-other.staging-1", "train", staging.name])
    assert sorted(p.name for p in reports.iterdir()) == [".train-other.staging-1", "train"]
    # killed between the swap's two renames: the old folder is moved aside and nothing is in place yet
    os.rename(target, reports / ".train.replaced-4343")
    with pytest.raises(KeyError), staged_directory(target):
        raise KeyError("this run fails too")
    assert target.is_dir() and not (reports / ".train.replaced-4343").exists()  # the last good one is back


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_does_not_see_a_staging_folder(tmp_path):
    """A kill leaves the folder behind; `git add reports` (as the README commits) must not take it."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with staged_directory(tmp_path / "reports" / "train") as staging:
        (staging / "params.yaml").write_text("lr: 0.1\n")
        listed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert listed == ""
    assert _files(tmp_path / "reports") == {"train/params.yaml": b"lr: 0.1\n"}  # and the .gitignore stays behind


def test_an_error_in_a_staging_folder_names_the_file_under_its_target(tmp_path):
    target = tmp_path / "train"
    with pytest.raises(FileNotFoundError) as raised, staged_directory(target) as staging:
        (staging / "missing" / "adapter.safetensors").read_bytes()
    assert raised.value.filename == str(target / "missing" / "adapter.safetensors")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_during_an_atomic_write_names_the_file(tmp_path):
    target = tmp_path / "adapter.safetensors"
    with pytest.raises(OSError) as raised, atomic_path(target), open("/dev/full", "wb") as full:
        full.write(b"\0" * 10)  # the kernel's ENOSPC, at the flush on close: write() names no file
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(target))
    assert list(tmp_path.iterdir()) == []
