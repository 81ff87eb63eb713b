"""The training loop and evaluation: varireal.finetune.train, varireal.finetune.evaluate (tiny CLIP, CPU)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_finetune_data import CLASSES, make_study

from varireal.finetune.data import SelectionError
from varireal.finetune.evaluate import evaluate, label_ranks, metrics_from_predictions, per_class_table
from varireal.finetune.kept import KEPT_FILE, NOTES, Evaluation
from varireal.finetune.lora import read_adapter
from varireal.finetune.objective import lr_at, mix_by_kind, warmup_cosine, warmup_steps, weighted_loss
from varireal.finetune.train import train
from varireal.io import read_table
from varireal.models.clip import build_tiny_clip
from varireal.settings.evaluate import EvaluateParams
from varireal.settings.train import LoraParams, TrainParams

LORA = LoraParams(rank=4, alpha=8, dropout=0.1, target_modules=("q_proj", "v_proj"), towers=("image", "text"))
TINY = TrainParams(
    batches="per_kind", batch_size=8, epochs=2, lr=5e-3, eval_every=2, num_workers=0, amp=False, device="cpu", lora=LORA
)
# The reference's batches: one pool of the 10 synthetic rows (feas=mixed) and the 12 real rows x 2 = 34
# rows, 5 steps per pass (the last one 2 rows); 7 steps run into the second pass.
POOL = TINY.model_copy(update={"batches": "pool", "real_repeats": 2, "steps": 7})


# --- pure pieces ------------------------------------------------------------------------------


def test_loss_weights_real_and_synthetic_parts():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1])
    is_real = torch.tensor([True, True, False, False])
    # by hand: CE of row i = logsumexp(row) - row[label]
    ce = [
        math.log(math.exp(2) + 1) - 2,
        math.log(1 + math.e) - 0,
        math.log(2 * math.e) - 1,
        math.log(1 + math.exp(3)) - 3,
    ]
    real, synthetic = (ce[0] + ce[1]) / 2, (ce[2] + ce[3]) / 2
    assert weighted_loss(logits, labels, is_real, 0.5, both_kinds=True).item() == pytest.approx(
        0.5 * real + 0.5 * synthetic, rel=1e-6
    )
    assert weighted_loss(logits, labels, is_real, 0.8, both_kinds=True).item() == pytest.approx(
        0.8 * real + 0.2 * synthetic, rel=1e-6
    )
    # a run of one kind: plain CE, whatever lambda says
    assert weighted_loss(
        logits, labels, torch.zeros(4, dtype=torch.bool), 0.8, both_kinds=False
    ).item() == pytest.approx(sum(ce) / 4, rel=1e-6)
    assert weighted_loss(
        logits, labels, torch.ones(4, dtype=torch.bool), 0.1, both_kinds=False
    ).item() == pytest.approx(sum(ce) / 4, rel=1e-6)


def test_a_kind_absent_from_a_pooled_batch_adds_nothing_as_in_the_reference():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1])
    plain = F.cross_entropy(logits, labels).item()
    synthetic_only = weighted_loss(logits, labels, torch.zeros(4, dtype=torch.bool), 0.8, both_kinds=True)
    real_only = weighted_loss(logits, labels, torch.ones(4, dtype=torch.bool), 0.8, both_kinds=True)
    assert synthetic_only.item() == pytest.approx(0.2 * plain, rel=1e-6)  # (1 - lambda) CE(synthetic) + lambda * 0
    assert real_only.item() == pytest.approx(0.8 * plain, rel=1e-6)
    # Under DDP a rank may hold only real rows while the step holds both: weights come from the step's counts.
    is_real = torch.tensor([True, True, False, False])
    whole = weighted_loss(logits, labels, is_real, 0.8, both_kinds=True)
    parts = [
        weighted_loss(logits[rows], labels[rows], is_real[rows], 0.8, (2, 2), both_kinds=True)
        for rows in ([0, 1], [2, 3])
    ]
    assert (parts[0] + parts[1]).item() == pytest.approx(whole.item(), rel=1e-6)
    lone = weighted_loss(
        logits[:2], labels[:2], is_real[:2], 0.8, (2, 0), both_kinds=True
    )  # the step has no synthetic row
    assert lone.item() == pytest.approx(0.8 * F.cross_entropy(logits[:2], labels[:2]).item(), rel=1e-6)


def test_warmup_from_the_floor_then_cosine_to_the_floor():
    lr, floor, total = 1e-3, 1e-8, 100
    warmup = warmup_steps(total, 0.1)
    assert warmup == 10 and warmup_steps(78720, 0.1) == 7872 and warmup_steps(29, 0.1) == 2  # int(), as the reference
    values = [lr_at(s, total, warmup, lr, floor) for s in range(total + 2)]
    assert values[0] == floor and values[warmup - 1] == pytest.approx(lr) and values[warmup] == pytest.approx(lr)
    assert values[1] == pytest.approx(floor + (lr - floor) / 9)  # linear: np.linspace(floor, lr, 10)
    assert values[55] == pytest.approx(floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * 45 / 90)))
    assert all(a >= b for a, b in zip(values[warmup:], values[warmup + 1 :]))  # never rises after the warm-up
    assert floor < values[total - 1] < 1e-6 and values[total] == values[total + 1] == floor  # the floor at T
    assert lr_at(0, 10, 1, lr, floor) == floor and lr_at(0, 10, 0, lr, 0.0) == lr  # one warm-up step; none
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = warmup_cosine(optimizer, total_steps=total, warmup_fraction=0.1, min_lr=floor)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(values[:total], rel=1e-12, abs=1e-20)


def test_the_test_split_replaces_the_kept_weights_only_with_a_strictly_higher_top1():
    best = Evaluation(step=4, top1=0.5, loss=1.0, split="test")
    assert not Evaluation(step=8, top1=0.5, loss=0.1, split="test").better_than(best)  # the reference's `>`
    assert Evaluation(step=8, top1=0.6, loss=2.0, split="test").better_than(best)
    val = Evaluation(step=4, top1=0.5, loss=1.0)
    assert Evaluation(step=8, top1=0.5, loss=0.9).better_than(val)  # on val a lower loss breaks the tie
    assert not Evaluation(step=8, top1=0.5, loss=1.0).better_than(val)  # a full tie keeps the earlier weights
    assert Evaluation(step=1, top1=0.0, loss=9.0, split="test").better_than(None)


def test_cutmix_mixes_only_within_each_kind():
    from torchvision.transforms import v2

    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 8, 8).clone()
    labels = torch.tensor([0, 1, 2, 3])
    is_real = torch.tensor([True, True, False, False])
    torch.manual_seed(0)
    mixed, targets = mix_by_kind(images, labels, is_real, v2.MixUp(num_classes=4, alpha=1.0), 4)
    assert targets[:2, 2:].sum() == 0 and targets[2:, :2].sum() == 0  # no synthetic label in real rows
    assert mixed[:2].max() <= 1 and mixed[2:].min() >= 2
    assert torch.allclose(targets.sum(dim=1), torch.ones(4))


def test_metrics_count_ties_in_favour_of_the_label_for_top_k():
    scores = np.array([[1.0, 2.0, 2.0], [3.0, 1.0, 0.0]])
    assert label_ranks(scores, np.array([1, 2])).tolist() == [0, 2]


# --- training and evaluation on the tiny CLIP -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clip") / "clip"
    build_tiny_clip(out, seed=0)
    return out


def _train(
    root: Path, study, clip: Path, settings: TrainParams = TINY, feas: str = "mixed", protocol: str = "heldout_val"
):
    real_dir, sets = study
    return train(
        settings,
        real_dir=real_dir,
        synthetic_dirs=sets,
        feas=feas,
        protocol=protocol,
        model_dir=clip,
        prefix="",
        out_dir=root / "train",
        report_dir=root / "reports" / "train",
    )


def _break_test_split(real_dir: Path) -> dict[Path, bytes]:
    """Overwrite every test image with junk; returns the originals to put back."""
    manifest = read_table(real_dir / "manifest.csv")
    originals = {}
    for path in manifest.loc[manifest["split"] == "test", "path"]:
        originals[real_dir / path] = (real_dir / path).read_bytes()
        (real_dir / path).write_bytes(b"not an image")
    return originals


def test_training_never_reads_test_and_is_reproducible(tmp_path, tiny_clip, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dvclive looks for a DVC repo from the working directory
    study = make_study(tmp_path / "study")
    originals = _break_test_split(study[0])
    first = _train(tmp_path / "a", study, tiny_clip)  # junk test images: never opened
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "study", moved)
    # a rerun from scratch, on the same files at another place
    second = _train(
        tmp_path / "b",
        (moved / "real", {f: moved / p.relative_to(tmp_path / "study") for f, p in study[1].items()}),
        tiny_clip,
    )
    assert first.steps == 2 * 2  # 12 real images (the larger kind), batch 8, 2 epochs
    assert first.images == {"synthetic": 10, "real": 12}  # mixed: 5 + 5, as many as one set of 10
    metrics = [json.loads((tmp_path / run / "reports/train/metrics.json").read_text()) for run in ("a", "b")]
    assert metrics[0] == metrics[1]
    assert metrics[0]["checkpoint"] == "best_val" and metrics[0]["checkpoint_note"] == NOTES["best_val"]
    assert metrics[0]["kept"]["step"] in (2, 4) and "test_top1" not in metrics[0]["kept"]
    tensors, lora = read_adapter(first.adapter)
    again, lora_again = read_adapter(second.adapter)
    assert lora == lora_again == LORA and tensors.keys() == again.keys()
    assert all(torch.equal(tensors[name], again[name]) for name in tensors)
    selection = read_table(first.selection)
    pd.testing.assert_frame_equal(selection.drop(columns="file"), read_table(second.selection).drop(columns="file"))
    assert set(selection["kind"]) == {"real", "synthetic"}
    assert (selection.groupby("feasibility").size()[["feasible", "infeasible"]] == 5).all()
    assert not (Path.cwd() / "dvc.yaml").exists()  # dvclive declares nothing
    for path, data in originals.items():
        path.write_bytes(data)

    report = tmp_path / "reports" / "eval"
    result = evaluate(
        EvaluateParams(device="cpu", num_workers=0, batch_size=4),
        real_dir=study[0],
        model_dir=tiny_clip,
        adapter=first.adapter,
        template=TINY.template,
        prefix="",
        report_dir=report,
    )
    assert result == json.loads((report / "metrics.json").read_text())
    assert result["images"] == 3 * 2 and result["top5_k"] == len(CLASSES) and result["top5"] == 1.0
    assert (result["checkpoint"], result["checkpoint_note"]) == ("best_val", NOTES["best_val"])  # from kept.json
    predictions = read_table(report / "predictions.csv")
    assert {
        **metrics_from_predictions(predictions, CLASSES),
        "checkpoint": "best_val",
        "checkpoint_note": NOTES["best_val"],
    } == result
    assert result["top1"] == predictions["correct"].mean()
    per_class = read_table(report / "per_class.csv")
    recomputed = per_class_table(predictions["label"].to_numpy(), predictions["correct"].to_numpy(), CLASSES)
    assert per_class["accuracy"].tolist() == pytest.approx(recomputed["accuracy"].tolist())
    confusion = read_table(report / "confusion.csv")
    assert confusion.columns.tolist() == ["actual", "predicted"]
    assert (confusion["actual"] == confusion["predicted"]).mean() == result["top1"]
    logits = torch.tensor([json.loads(text) for text in predictions["logits"]])
    p_label = F.softmax(logits, dim=1)[torch.arange(len(logits)), torch.tensor(predictions["label"].to_numpy())]
    assert p_label.numpy() == pytest.approx(predictions["p_label"].to_numpy(), abs=1e-6)


def test_training_modes_and_lower_loss(tmp_path, tiny_clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = make_study(tmp_path / "study")
    settings = TINY.model_copy(update={"data": "real_only", "epochs": 4, "eval_every": 100})
    result = _train(tmp_path / "real", study, tiny_clip, settings, feas="feasible")
    assert result.images == {"real": 12} and result.steps == 4 * 2
    assert result.kept.step == 8  # evaluated once, at the end
    losses = pd.read_csv(tmp_path / "real/reports/train/plots/metrics/train/loss.tsv", sep="\t")["loss"]
    assert losses.iloc[-2:].mean() < losses.iloc[:2].mean()  # it learns the coloured squares


def test_protocol_final_keeps_the_final_weights_which_val_never_changes(tmp_path, tiny_clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = make_study(tmp_path / "study")
    originals = _break_test_split(study[0])  # final reads no test image either
    settings = TINY.model_copy(update={"eval_every": 1})  # val scored after every step: best != last
    logged = _train(tmp_path / "with-val", study, tiny_clip, settings, protocol="final")
    assert logged.kept.step == logged.steps == 4 and logged.kept.split == "val"
    summary = json.loads((tmp_path / "with-val/reports/train/metrics.json").read_text())
    assert summary["checkpoint"] == "final" and summary["checkpoint_note"] == NOTES["final"]
    assert summary["kept"] == {"step": 4, "val_top1": logged.kept.top1, "val_loss": logged.kept.loss}
    assert json.loads((tmp_path / "with-val/train" / KEPT_FILE).read_text())["checkpoint"] == "final"
    # Without any val image (Aircraft's trainval, all of Cars' train) final trains the same weights.
    manifest_path = study[0] / "manifest.csv"
    manifest = read_table(manifest_path)
    manifest[manifest["split"] != "val"].to_csv(manifest_path, index=False)
    unseen = _train(tmp_path / "no-val", study, tiny_clip, settings, protocol="final")
    assert unseen.kept is None
    assert unseen.adapter.read_bytes() == logged.adapter.read_bytes()
    assert json.loads((tmp_path / "no-val/reports/train/metrics.json").read_text())["kept"] == {"step": 4}
    with pytest.raises(SelectionError, match="manifest.csv: no val image; protocol heldout_val chooses"):
        _train(tmp_path / "heldout", study, tiny_clip, settings)
    for path, data in originals.items():
        path.write_bytes(data)


def test_protocol_paper_keeps_the_best_test_top1_and_every_report_says_so(tmp_path, tiny_clip, monkeypatch):
    """The paper's choice: test scored every eval_every steps and at the end, the best top-1 kept (a tie
    keeps the earlier weights); the adapter, scored again on test, gives that top-1."""
    monkeypatch.chdir(tmp_path)
    study = make_study(tmp_path / "study")
    settings = POOL.model_copy(update={"eval_every": 2, "eval_batch_size": 4})  # test after steps 2, 4, 6 and 7
    result = _train(tmp_path / "paper", study, tiny_clip, settings, protocol="paper")
    assert result.steps == 7 and result.kept.split == "test"
    tops = pd.read_csv(tmp_path / "paper/reports/train/plots/metrics/test/top1.tsv", sep="\t")
    assert tops["step"].tolist() == [2, 4, 6, 7]
    best = tops["top1"].max()
    assert result.kept.top1 == best and result.kept.step == int(tops.loc[tops["top1"] == best, "step"].iloc[0])
    metrics = json.loads((tmp_path / "paper/reports/train/metrics.json").read_text())
    assert metrics["checkpoint"] == "best_test" and metrics["checkpoint_note"] == NOTES["best_test"]
    assert metrics["kept"] == {"step": result.kept.step, "test_top1": best, "test_loss": result.kept.loss}
    assert set(metrics["val"]) == {"top1", "loss"}  # val, where there is one, is still logged
    report = evaluate(
        EvaluateParams(device="cpu", num_workers=0, batch_size=4),
        real_dir=study[0],
        model_dir=tiny_clip,
        adapter=result.adapter,
        template=TINY.template,
        prefix="",
        report_dir=tmp_path / "eval",
    )
    assert report["top1"] == best  # the kept weights are the best test checkpoint
    assert (report["checkpoint"], report["checkpoint_note"]) == (
        "best_test",
        "chosen on the test split, as the paper did: optimistic",
    )
    # The same run under final trains the same steps and keeps its last weights.
    final = _train(tmp_path / "final", study, tiny_clip, settings, protocol="final")
    if result.kept.step != result.steps:
        assert final.adapter.read_bytes() != result.adapter.read_bytes()
    assert final.kept.step == 7
    # No test image: paper cannot choose, and says which file and what to do.
    manifest_path = study[0] / "manifest.csv"
    manifest = read_table(manifest_path)
    manifest[manifest["split"] != "test"].to_csv(manifest_path, index=False)
    with pytest.raises(
        SelectionError, match="manifest.csv: no test image; protocol paper chooses the checkpoint on test"
    ):
        _train(tmp_path / "no-test", study, tiny_clip, settings, protocol="paper")


def _train_to(root: Path, study, clip: Path, settings: TrainParams, checkpoints: Path, protocol: str = "heldout_val"):
    real_dir, sets = study
    return train(
        settings,
        real_dir=real_dir,
        synthetic_dirs=sets,
        feas="mixed",
        protocol=protocol,
        model_dir=clip,
        prefix="",
        out_dir=root / "train",
        report_dir=root / "reports" / "train",
        checkpoint_dir=checkpoints,
    )


def the_checkpoint(folder: Path) -> Path:
    """The one run's checkpoint in `folder` (train names it by the run's fingerprint)."""
    (path,) = folder.glob("state-*.pt")
    return path


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_with_the_same_bytes(
    tmp_path, tiny_clip, monkeypatch, capsys
):
    import varireal.finetune.train as training

    monkeypatch.chdir(tmp_path)
    study = make_study(tmp_path / "study")
    settings = TINY.model_copy(
        update={
            "epochs": 3,
            "eval_every": 2,
            "checkpoint_every": 2,
            "cutmix_mixup": TINY.cutmix_mixup.model_copy(update={"mode": "mixup"}),
        }
    )
    whole = _train_to(tmp_path / "whole", study, tiny_clip, settings, tmp_path / "whole-ckpt")  # 6 steps

    real_step, steps = training.train_step, []

    def killed_at_step_5(*args):
        steps.append(len(steps))
        if len(steps) == 5:
            raise KeyboardInterrupt  # as a kill: after the checkpoint of step 4, before step 5 ends
        return real_step(*args)

    monkeypatch.setattr(training, "train_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _train_to(tmp_path / "resumed", study, tiny_clip, settings, tmp_path / "ckpt")
    monkeypatch.setattr(training, "train_step", real_step)
    assert torch.load(the_checkpoint(tmp_path / "ckpt"), weights_only=True)["step"] == 4
    resumed = _train_to(tmp_path / "resumed", study, tiny_clip, settings, tmp_path / "ckpt")

    assert resumed.adapter.read_bytes() == whole.adapter.read_bytes()
    assert resumed.kept == whole.kept
    metrics = [json.loads((tmp_path / run / "reports/train/metrics.json").read_text()) for run in ("whole", "resumed")]
    assert metrics[0] == metrics[1]
    losses = [
        pd.read_csv(tmp_path / run / "reports/train/plots/metrics/train/loss.tsv", sep="\t")
        for run in ("whole", "resumed")
    ]
    assert losses[1]["step"].tolist() == list(range(1, 7)) and losses[1]["loss"].tolist() == losses[0]["loss"].tolist()

    # a checkpoint of other settings is not resumed: the run starts over (and ends as its own whole run)
    other = settings.model_copy(update={"lr": 1e-3})
    monkeypatch.setattr(training, "train_step", killed_at_step_5)
    steps.clear()
    with pytest.raises(KeyboardInterrupt):
        _train_to(tmp_path / "a", study, tiny_clip, settings, tmp_path / "shared")
    monkeypatch.setattr(training, "train_step", real_step)
    killed_run = the_checkpoint(tmp_path / "shared")
    fresh = _train_to(tmp_path / "b", study, tiny_clip, other, tmp_path / "shared")
    alone = _train_to(tmp_path / "c", study, tiny_clip, other, tmp_path / "c-ckpt")
    assert fresh.adapter.read_bytes() == alone.adapter.read_bytes()
    # the other run kept the killed run's checkpoint (and, finished, left none of its own): it still resumes
    assert sorted((tmp_path / "shared").iterdir()) == [killed_run]
    capsys.readouterr()
    assert _train_to(tmp_path / "a", study, tiny_clip, settings, tmp_path / "shared").adapter.read_bytes() == (
        whole.adapter.read_bytes()
    )
    assert "train: resuming at step 4 of 6" in capsys.readouterr().out
    assert not any((tmp_path / "shared").iterdir())


def test_a_killed_pooled_run_choosing_on_test_resumes_to_the_same_bytes(tmp_path, tiny_clip, monkeypatch):
    """Pool batches across a pass boundary, a steps schedule with a floor, the best test weights so far:
    the resumed run ends as the uninterrupted one, kept.json and reports included."""
    import varireal.finetune.train as training

    monkeypatch.chdir(tmp_path)
    study = make_study(tmp_path / "study")
    settings = POOL.model_copy(
        update={
            "eval_every": 2,
            "checkpoint_every": 2,
            "min_lr": 1e-4,
            "cutmix_mixup": TINY.cutmix_mixup.model_copy(update={"mode": "mixup"}),
        }
    )
    whole = _train_to(tmp_path / "whole", study, tiny_clip, settings, tmp_path / "whole-ckpt", protocol="paper")
    real_step, calls = training.train_step, []

    def killed_at_step_6(*args):
        calls.append(len(calls))
        if len(calls) == 6:
            raise KeyboardInterrupt  # after the checkpoint of step 4 and the pass's last (partial) batch
        return real_step(*args)

    monkeypatch.setattr(training, "train_step", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        _train_to(tmp_path / "resumed", study, tiny_clip, settings, tmp_path / "ckpt", protocol="paper")
    monkeypatch.setattr(training, "train_step", real_step)
    assert torch.load(the_checkpoint(tmp_path / "ckpt"), weights_only=True)["step"] == 4
    resumed = _train_to(tmp_path / "resumed", study, tiny_clip, settings, tmp_path / "ckpt", protocol="paper")
    assert resumed.adapter.read_bytes() == whole.adapter.read_bytes() and resumed.kept == whole.kept
    for name in (f"train/{KEPT_FILE}", "reports/train/metrics.json", "reports/train/plots/metrics/train/lr.tsv"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
