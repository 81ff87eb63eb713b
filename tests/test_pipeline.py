"""The default profile end to end, as a newcomer runs it: `dvc repro` in a fresh clone."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image
from pipeline_repo import clone, dvc, run, set_params

from varireal.io import read_table


def test_repro_builds_every_declared_output(repro):
    manifest = read_table(repro / "data/real/demo/manifest.csv")
    assert set(manifest["split"]) == {"train", "val", "test"}
    masks = read_table(repro / "data/masks/demo/manifest.csv")
    assert sorted(masks["id"]) == sorted(manifest.query("split == 'train'")["id"])
    assert all((repro / "data/masks/demo" / p).exists() for p in masks["mask_path"] if p)
    lock = json.loads((repro / "data/models/lock.json").read_text())
    assert {"detector", "segmenter", "llm"} <= set(lock["roles"])
    prompts = json.loads((repro / "data/prompts/demo.json").read_text())
    assert prompts["source"] == "curated"
    assert set(prompts["lists"]["color"]) == set(manifest["class_name"])
    assert json.loads((repro / "reports/masks.json").read_text())["images"] == len(masks)


def test_repro_builds_six_filtered_sets_a_gallery_and_test_metrics(repro):
    train_ids = set(read_table(repro / "data/real/demo/manifest.csv").query("split == 'train'")["id"])
    for attr in ("background", "color", "texture"):
        for feas in ("feasible", "infeasible"):
            edits = read_table(repro / f"data/edits/{attr}/{feas}/manifest.parquet")
            assert set(edits["source_id"]) == train_ids and set(edits["status"]) <= {"edited", "not_needed"}
            assert sorted(p.name for p in (repro / f"data/edits/{attr}/{feas}").iterdir()) == [
                "manifest.parquet",
                "shards",
            ]
            kept = read_table(repro / f"data/synthetic/{attr}/{feas}/manifest.parquet")
            assert len(kept) == len(edits)  # every candidate keeps its answers, accepted or not
            accepted = kept[kept["accepted"]]
            for _, slot in kept.sort_values("candidate").groupby(
                ["source_id", "slot"]
            ):  # early stop: made up to the first pass
                made = list(slot["status"]).count("edited")
                assert list(slot["status"]) == ["edited"] * made + ["not_needed"] * (len(slot) - made)
                passed = list(slot["passed"])[:made]
                assert passed == [False] * (made - 1) + [True] or (made == len(slot) and not any(passed))
                assert slot["score"].notna().sum() == made  # every made candidate has its answers
            shard_dir = repro / f"data/synthetic/{attr}/{feas}/shards"
            members = [m for shard in sorted(shard_dir.glob("*.tar")) for m in tarfile.open(shard).getnames()]
            assert sorted(m for m in members if m.endswith(".png")) == sorted(f"{e}.png" for e in accepted["edit_id"])
            for row in accepted.head(3).itertuples():  # the manifest's byte ranges are the images
                with open(repro / f"data/synthetic/{attr}/{feas}" / row.shard, "rb") as handle:
                    handle.seek(row.offset)
                    assert Image.open(io.BytesIO(handle.read(row.size))).size[0] > 0
            rate = json.loads((repro / f"reports/filter/{attr}-{feas}.json").read_text())["acceptance_rate"]
            assert 0 <= rate <= 1
        assert (repro / f"reports/gallery/{attr}.png").is_file()
    metrics = json.loads((repro / "reports/eval/metrics.json").read_text())
    predictions = read_table(repro / "reports/eval/predictions.csv")
    test = read_table(repro / "data/real/demo/manifest.csv").query("split == 'test'")
    assert sorted(predictions["id"]) == sorted(test["id"])
    assert metrics["top1"] == pytest.approx(predictions["correct"].mean())
    assert (repro / "data/train/adapter.safetensors").is_file()
    trained = json.loads((repro / "reports/train/metrics.json").read_text())
    assert trained["checkpoint"] == "best_val" and 0 <= trained["kept"]["val_top1"] <= 1  # tiny: protocol heldout_val
    assert metrics["checkpoint"] == "best_val"  # evaluate says how the weights it scored were chosen


def test_varireal_edit_changes_one_image_and_keeps_its_background(repro, tmp_path):
    image = repro / "data/real/demo/train/cat/cat_train_000.jpg"
    mask = repro / "data/masks/demo/masks/cat_train_000.png"
    out = tmp_path / "pink.png"
    result = run(
        [
            sys.executable,
            "-m",
            "varireal.cli",
            "edit",
            "--image",
            str(image),
            "--mask",
            str(mask),
            "--attr",
            "color",
            "--value",
            "neon pink",
            "--class-name",
            "cat",
            "--out",
            str(out),
        ],
        repro,
    )
    assert "neon pink" in result.stdout
    with Image.open(image) as source, Image.open(out) as edited, Image.open(mask) as opened:
        assert edited.size == source.size
        background = np.asarray(opened.convert("L")) < 128
        assert (np.asarray(edited.convert("RGB"))[background] == np.asarray(source.convert("RGB"))[background]).all()
    missing = run(
        [
            sys.executable,
            "-m",
            "varireal.cli",
            "edit",
            "--image",
            str(image),
            "--attr",
            "color",
            "--value",
            "red",
            "--out",
            str(tmp_path / "x.png"),
            "--lock",
            str(tmp_path / "nowhere.json"),
        ],
        repro,
        check=False,
    )
    assert missing.returncode == 1 and "nowhere.json: not found" in missing.stderr and "Traceback" not in missing.stderr


def test_second_repro_has_nothing_to_do(repro):
    result = dvc("repro", cwd=repro)
    assert "Data and pipelines are up to date" in result.stdout + result.stderr


def test_dag_runs_fetch_to_evaluate(repro):
    dag = dvc("dag", "--dot", cwd=repro).stdout
    edges = (
        ("fetch", "masks"),
        ("models", "masks"),
        ("fetch", "prompts"),
        ("models", "prompts"),
        ("masks", "edit@color-infeasible"),
        ("prompts", "edit@color-infeasible"),
        ("edit@color-infeasible", "filter@color-infeasible"),
        ("filter@background-feasible", "train"),
        ("filter@background-infeasible", "train"),
        ("train", "evaluate"),
        ("filter@background-infeasible", "gallery@background"),
    )
    for upstream, downstream in edges:
        assert f'"{upstream}" -> "{downstream}"' in dag, dag


# An attribute + feasibility experiment that retrains only: tests/test_sharing.py (queued, on a
# pulled clone); feasibility x seed experiments: tests/test_study_pipeline.py (the queued grid).


def test_paper_profile_dry_run_lists_the_stages_without_touching_the_workspace(repro, tmp_path):
    # `-f`: plain `exp run --dry` trips over outputs its temp dir has not checked out (DVC #10135).
    before = (repro / "params.yaml").read_text()
    lock = (repro / "data/models/lock.json").read_bytes()
    caches = {"VARIREAL_CACHE": tmp_path / "varireal-cache", "HF_HUB_CACHE": tmp_path / "hf-cache"}
    result = dvc(
        "exp", "run", "-S", "profile=paper", "--dry", "-f", cwd=repro, env={k: str(v) for k, v in caches.items()}
    )
    out = result.stdout + result.stderr
    for stage in (
        "fetch",
        "models",
        "masks",
        "prompts",
        "edit@texture-infeasible",
        "filter@color-feasible",
        "train",
        "evaluate",
    ):
        assert f"Running stage '{stage}'" in out, out
    assert (repro / "params.yaml").read_text() == before
    # nothing of the paper profile was built or downloaded: the lock is the tiny one, caches untouched
    assert (repro / "data/models/lock.json").read_bytes() == lock
    assert {role["source"] for role in json.loads(lock)["roles"].values()} == {"tiny"}
    assert not any(path.exists() for path in caches.values())


def test_bad_params_stop_the_stage_naming_the_key(repro, tmp_path):
    repo = clone(tmp_path)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("profile: tiny", "profile: tiyn"))
    result = run([sys.executable, "-m", "stages.fetch"], repo, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "profile = 'tiyn'" in result.stderr and "'tiny' or 'paper'" in result.stderr


def test_a_failed_train_keeps_the_adapter_dvc_would_have_deleted(repro, tmp_path):
    """data/train is `persist: true`: DVC leaves it in place, and train replaces it only on success."""
    repo = tmp_path / "repo"
    shutil.copytree(repro, repo, symlinks=True)
    adapter = (repo / "data/train/adapter.safetensors").read_bytes()
    set_params(repo, {"train.tiny.max_hours": 1e-9})  # the run, timed on its first steps, is over the limit
    result = dvc("repro", "--force", "--single-item", "train", cwd=repo, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert "error: train: the run would take about" in output and "max_hours = 1e-09" in output, output
    assert (repo / "data/train/adapter.safetensors").read_bytes() == adapter
