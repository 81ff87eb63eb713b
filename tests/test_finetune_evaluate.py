"""Scoring the fine-tuned classifier on the real test split: varireal.finetune.evaluate (tiny CLIP, CPU)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_finetune_data import _image

from varireal.finetune.augment import eval_transform
from varireal.finetune.evaluate import evaluate, label_ranks, metrics_from_predictions, predictions_table
from varireal.finetune.kept import KEPT_FILE, Evaluation, KeptRecordError, kept_record, write_kept
from varireal.finetune.lora import AdapterError, LoraParams, save_adapter
from varireal.finetune.model import ClipClassifier, build_classifier
from varireal.images import read_image_rgb
from varireal.io import read_table, write_table
from varireal.models.clip import build_tiny_clip
from varireal.settings.evaluate import EvaluateParams

# Six classes: top-5 (k = 5) is then a real test, not always 1. A comma and a space in names
# check that the CSV files keep them intact.
CLASSES = ["cat", "coffee cup", "rocket", "Boeing 707", "sea, lion", "zebra"]
# Test images per class; the zebra has none (it must be left out of mean_per_class).
TEST_PER_CLASS = [3, 2, 2, 1, 2, 0]
TEMPLATE = "a photo of a {prefix} {class_name}."
PREFIX = "thing"
# Not the settings of any profile: evaluate must take them from the adapter file.
LORA = LoraParams(
    rank=2, alpha=4, dropout=0.1, target_modules=("q_proj", "v_proj", "out_proj"), towers=("image", "text")
)
SETTINGS = EvaluateParams(device="cpu", batch_size=4, num_workers=0)  # 10 test images: 3 batches
REPORTS = ("predictions.csv", "metrics.json", "confusion.csv", "per_class.csv")


def _color(index: int) -> tuple[int, int, int]:
    return (40 * index + 30, 255 - 35 * index, (90 * index) % 256)


def make_real_dir(root: Path, classes=CLASSES, test_per_class=TEST_PER_CLASS, ids=None) -> Path:
    """data/real/<dataset> as the fetch stage writes it: classes.csv, manifest.csv, image files.

    Splits are interleaved in the manifest. Train and val "images" are junk bytes: evaluation
    must never open them. `ids` (optional) renames every image, in manifest order.
    """
    rows = []
    for index, name in enumerate(classes):
        for split, count in (("val", 1), ("test", test_per_class[index]), ("train", 1)):
            for n in range(count):
                rows.append(
                    {
                        "id": f"{split[:2]}-{index}-{n}",
                        "path": f"{split}/{index}/{split}-{index}-{n}.png",
                        "class_name": name,
                        "class_index": index,
                        "split": split,
                        "source": "fixture",
                    }
                )
    manifest = pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)
    if ids is not None:
        manifest["id"] = ids
    for number, row in enumerate(manifest.itertuples()):
        file = root / row.path
        file.parent.mkdir(parents=True, exist_ok=True)
        if row.split == "test":
            _image(_color(row.class_index), number, size=(20, 18)).save(file)
        else:
            file.write_bytes(b"not an image: only the test split may be read")
    write_table(root / "manifest.csv", manifest)
    write_table(root / "classes.csv", pd.DataFrame({"class_index": range(len(classes)), "class_name": classes}))
    return root


def raw_csv(path: Path) -> pd.DataFrame:
    """A CSV as the text it holds (no number parsing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clip") / "clip"
    build_tiny_clip(out, seed=0)
    return out


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory) -> Path:
    return make_real_dir(tmp_path_factory.mktemp("real") / "real")


def _adapted_model(clip_dir: Path, class_names=CLASSES):
    """A classifier whose LoRA B matrices are non-zero (a fresh LoRA changes nothing), in eval mode."""
    model = build_classifier(clip_dir, class_names, TEMPLATE, PREFIX, LORA, "cpu", seed=3)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def adapter(clip_dir, tmp_path_factory) -> tuple[Path, ClipClassifier, ClipClassifier]:
    """(adapter file, the adapted model it was saved from, the same model with a zero LoRA update)."""
    model = _adapted_model(clip_dir)
    path = save_adapter(model, tmp_path_factory.mktemp("train") / "adapter.safetensors")
    write_kept(
        path.parent, kept_record("best_test", Evaluation(step=6, top1=0.5, loss=1.0, split="test"), 8)
    )  # as train writes it
    base = build_classifier(clip_dir, CLASSES, TEMPLATE, PREFIX, LORA, "cpu", seed=3).eval()
    return path, model, base


@pytest.fixture(scope="module")
def report(real_dir, clip_dir, adapter, tmp_path_factory) -> tuple[dict, Path]:
    report_dir = tmp_path_factory.mktemp("reports") / "eval"
    metrics = evaluate(
        SETTINGS,
        real_dir=real_dir,
        model_dir=clip_dir,
        adapter=adapter[0],
        template=TEMPLATE,
        prefix=PREFIX,
        report_dir=report_dir,
    )
    return metrics, report_dir


def _logits_column(predictions: pd.DataFrame) -> np.ndarray:
    return np.array([json.loads(text) for text in predictions["logits"]], dtype=np.float64)


# --- evaluate, end to end ---------------------------------------------------------------------------


def test_evaluate_writes_one_prediction_per_test_image_only(report, real_dir):
    metrics, report_dir = report
    assert sorted(p.name for p in report_dir.iterdir()) == sorted(REPORTS)
    assert metrics == json.loads((report_dir / "metrics.json").read_text())

    manifest = raw_csv(real_dir / "manifest.csv")
    test = manifest[manifest["split"] == "test"]
    predictions = raw_csv(report_dir / "predictions.csv")
    assert predictions.columns.tolist() == [
        "id",
        "label",
        "label_name",
        "prediction",
        "prediction_name",
        "p_label",
        "rank",
        "correct",
        "logits",
    ]
    # one row per test image, in manifest order, and no train or val image
    assert predictions["id"].tolist() == test["id"].tolist()
    assert not set(predictions["id"]) & set(manifest.loc[manifest["split"] != "test", "id"])
    assert predictions["label"].tolist() == test["class_index"].tolist()
    assert predictions["label_name"].tolist() == test["class_name"].tolist()
    assert metrics["images"] == sum(TEST_PER_CLASS) == len(predictions)
    assert metrics["classes"] == len(CLASSES)
    assert metrics["top5_k"] == 5


def test_metrics_json_is_recomputed_from_predictions_csv(report):
    metrics, report_dir = report
    predictions = read_table(report_dir / "predictions.csv")
    logits = _logits_column(predictions)
    labels = predictions["label"].to_numpy()
    assert logits.shape == (len(predictions), len(CLASSES))

    # the argmax of the logits column is the prediction, and its name the class of that index
    assert predictions["prediction"].tolist() == logits.argmax(axis=1).tolist()
    assert predictions["prediction_name"].tolist() == [CLASSES[i] for i in predictions["prediction"]]
    assert predictions["correct"].tolist() == (predictions["prediction"] == predictions["label"]).tolist()
    # rank = classes scoring strictly above the label; p_label = its softmax probability
    true = logits[np.arange(len(labels)), labels]
    assert predictions["rank"].tolist() == [int((row > t).sum()) for row, t in zip(logits, true)]
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert predictions["p_label"].to_numpy() == pytest.approx(softmax[np.arange(len(labels)), labels], abs=1e-6)

    assert metrics["top1"] == predictions["correct"].mean()
    assert metrics["top5"] == (predictions["rank"] < metrics["top5_k"]).mean()
    by_class = predictions.groupby("label")["correct"].mean()
    assert sorted(by_class.index) == [i for i, n in enumerate(TEST_PER_CLASS) if n]
    assert metrics["mean_per_class"] == pytest.approx(by_class.mean(), abs=1e-12)
    assert {
        **metrics_from_predictions(predictions, CLASSES),
        "checkpoint": "best_test",
        "checkpoint_note": "chosen on the test split, as the paper did: optimistic",
    } == metrics  # the choice from kept.json
    # the fixture is not degenerate: the checks above tell right from wrong and top-1 from top-5
    assert 0 < metrics["top1"] < 1
    assert predictions["rank"].nunique() > 1


def test_per_class_and_confusion_files_match_the_predictions(report):
    _, report_dir = report
    predictions = read_table(report_dir / "predictions.csv")
    per_class = read_table(report_dir / "per_class.csv")
    assert per_class.columns.tolist() == ["class_index", "class_name", "images", "correct", "accuracy"]
    assert per_class["class_index"].tolist() == list(range(len(CLASSES)))
    assert per_class["class_name"].tolist() == CLASSES
    assert per_class["images"].tolist() == TEST_PER_CLASS
    grouped = predictions.groupby("label")["correct"]
    for row in per_class.itertuples():
        if row.images:
            assert row.correct == grouped.sum()[row.class_index]
            assert row.accuracy == pytest.approx(grouped.mean()[row.class_index], abs=1e-12)
        else:  # no test image: no accuracy, not 0
            assert row.correct == 0 and math.isnan(row.accuracy)

    confusion = raw_csv(report_dir / "confusion.csv")
    raw = raw_csv(report_dir / "predictions.csv")
    assert confusion.columns.tolist() == ["actual", "predicted"]
    assert confusion["actual"].tolist() == raw["label_name"].tolist()
    assert confusion["predicted"].tolist() == raw["prediction_name"].tolist()
    assert "sea, lion" in set(confusion["actual"])  # a comma survives the CSV


def test_evaluate_scores_with_the_saved_adapter_and_its_settings(report, adapter, real_dir):
    _, report_dir = report
    _, model, base = adapter
    predictions = read_table(report_dir / "predictions.csv")
    logits = _logits_column(predictions)
    # exact float32 values in the JSON column
    assert np.array_equal(logits.astype(np.float32).astype(np.float64), logits)

    transform = eval_transform(model.image_size, model.mean, model.std, "bicubic")
    paths = read_table(real_dir / "manifest.csv").set_index("id")["path"]
    images = torch.stack([transform(read_image_rgb(real_dir / paths[i])) for i in predictions["id"]])
    with torch.no_grad():
        adapted, plain = model(images).double().numpy(), base(images).double().numpy()
    assert logits == pytest.approx(adapted, abs=1e-4)
    assert np.abs(plain - adapted).max() > 1e-2  # so the adapter, not the base model, scored them


def test_without_logits_the_table_keeps_what_pairing_needs(report, real_dir, clip_dir, adapter, tmp_path):
    metrics, report_dir = report
    compact = evaluate(
        SETTINGS.model_copy(update={"save_logits": False}),
        real_dir=real_dir,
        model_dir=clip_dir,
        adapter=adapter[0],
        template=TEMPLATE,
        prefix=PREFIX,
        report_dir=tmp_path / "eval",
    )
    assert compact == metrics
    full, small = raw_csv(report_dir / "predictions.csv"), raw_csv(tmp_path / "eval" / "predictions.csv")
    assert small.columns.tolist() == [
        "id",
        "label",
        "label_name",
        "prediction",
        "prediction_name",
        "p_label",
        "rank",
        "correct",
    ]
    pd.testing.assert_frame_equal(small, full.drop(columns="logits"))
    for name in ("metrics.json", "confusion.csv", "per_class.csv"):
        assert (tmp_path / "eval" / name).read_bytes() == (report_dir / name).read_bytes(), name


def test_evaluating_twice_gives_identical_files(report, real_dir, clip_dir, adapter, tmp_path):
    metrics, report_dir = report
    again = evaluate(
        SETTINGS,
        real_dir=real_dir,
        model_dir=clip_dir,
        adapter=adapter[0],
        template=TEMPLATE,
        prefix=PREFIX,
        report_dir=tmp_path / "eval",
    )
    assert again == metrics
    for name in REPORTS:
        assert (tmp_path / "eval" / name).read_bytes() == (report_dir / name).read_bytes(), name


# --- the pure pieces on hand-made logits -----------------------------------------------------------


def _rows(labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(len(labels))],
            "file": [f"/data/img{i}.png" for i in range(len(labels))],
            "class_index": labels,
        }
    )


def test_predictions_table_on_hand_made_logits():
    names = ["a", "b", "c"]
    logits = torch.tensor(
        [
            [2.0, 2.0, 1.0],  # tie for first between a and b, label b: predicted a, but rank 0
            [0.0, 3.0, 3.0],  # tie between b and c, label c: predicted b, rank 0
            [1.0, 5.0, 1.0],  # label a below b only, tied with c: rank 1
            [0.5, -1.0, 4.0],  # label c, clear winner
        ]
    )
    table = predictions_table(_rows([1, 2, 0, 2]), logits, names)
    assert table["id"].tolist() == ["img0", "img1", "img2", "img3"]
    assert table["prediction"].tolist() == [0, 1, 1, 2]  # first maximum on ties, as torch.argmax
    assert table["prediction"].tolist() == logits.argmax(dim=1).tolist()
    assert table["prediction_name"].tolist() == ["a", "b", "b", "c"]
    assert table["label_name"].tolist() == ["b", "c", "a", "c"]
    assert table["rank"].tolist() == [0, 0, 1, 0]
    assert table["correct"].tolist() == [False, False, False, True]
    expected = torch.softmax(logits.double(), dim=1)[torch.arange(4), torch.tensor([1, 2, 0, 2])]
    assert table["p_label"].tolist() == pytest.approx(expected.tolist(), abs=1e-7)
    assert table["p_label"].tolist()[:2] == pytest.approx(
        [math.e / (2 * math.e + 1), math.exp(3) / (1 + 2 * math.exp(3))], abs=1e-7
    )
    assert [json.loads(text) for text in table["logits"]] == logits.tolist()


def test_label_ranks_count_only_strictly_higher_scores():
    scores = np.array([[1.0, 2.0, 2.0, 0.0], [3.0, 1.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, 1.0, 2.0, 3.0]])
    assert label_ranks(scores, np.array([1, 2, 3, 0])).tolist() == [0, 3, 0, 3]


def test_metrics_from_hand_made_predictions():
    names = [f"class{i}" for i in range(7)]
    base = np.arange(7, dtype=np.float32)  # class 6 scores highest, class 0 lowest
    logits = torch.tensor(np.stack([base, base, base, base, base]))
    # ranks: label 6 -> 0, label 2 -> 4, label 1 -> 5, label 0 -> 6, label 6 -> 0
    labels = [6, 2, 1, 0, 6]
    table = predictions_table(_rows(labels), logits, names)
    metrics = metrics_from_predictions(table, names)
    assert table["rank"].tolist() == [0, 4, 5, 6, 0]
    assert metrics["top5_k"] == 5 and metrics["images"] == 5 and metrics["classes"] == 7
    assert metrics["top1"] == pytest.approx(2 / 5)
    assert metrics["top5"] == pytest.approx(3 / 5)  # ranks 0, 4, 0 are below 5; 5 and 6 are not
    # per class: class6 2/2, class2 0/1, class1 0/1, class0 0/1; classes 3, 4, 5 have no image
    assert metrics["mean_per_class"] == pytest.approx((1 + 0 + 0 + 0) / 4)

    # fewer than five classes: k is the class count, so every label is within the top k
    three = predictions_table(_rows([0, 1, 2]), torch.tensor([[0.0, 1.0, 2.0]] * 3), ["x", "y", "z"])
    assert metrics_from_predictions(three, ["x", "y", "z"])["top5_k"] == 3
    assert metrics_from_predictions(three, ["x", "y", "z"])["top5"] == 1.0


def test_metrics_come_from_the_prediction_and_rank_columns_not_the_correct_column():
    names = ["a", "b", "c"]
    table = predictions_table(
        _rows([0, 1, 1, 2]), torch.tensor([[3.0, 0, 0], [0, 2.0, 1], [0, 0, 1.0], [1.0, 0, 0]]), names
    )
    metrics = metrics_from_predictions(table, names)
    assert metrics["top1"] == 0.5
    # per class: a 1/1, b 1/2, c 0/1 -> mean 0.5, the mean of the classes, not of the images
    assert metrics["mean_per_class"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics_from_predictions(table.assign(correct=True), names) == metrics
    # without logits (save_logits off) the same numbers
    compact = predictions_table(
        _rows([0, 1, 1, 2]),
        torch.tensor([[3.0, 0, 0], [0, 2.0, 1], [0, 0, 1.0], [1.0, 0, 0]]),
        names,
        save_logits=False,
    )
    assert "logits" not in compact.columns and metrics_from_predictions(compact, names) == metrics


def test_a_class_without_test_images_is_left_out_of_mean_per_class():
    names = ["a", "b", "c"]
    table = predictions_table(_rows([0, 0, 1]), torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]]), names)
    metrics = metrics_from_predictions(table, names)
    assert metrics["top1"] == pytest.approx(2 / 3)
    assert metrics["mean_per_class"] == pytest.approx((0.5 + 1.0) / 2)  # not (0.5 + 1 + 0) / 3


# --- errors -------------------------------------------------------------------------------------------


def test_a_manifest_without_test_images_is_refused_naming_it(real_dir, clip_dir, adapter, tmp_path):
    no_test = tmp_path / "real"
    shutil.copytree(real_dir, no_test)
    manifest = read_table(no_test / "manifest.csv")
    write_table(no_test / "manifest.csv", manifest[manifest["split"] != "test"])
    with pytest.raises(ValueError, match=re.escape(str(no_test / "manifest.csv")) + ".*no test image"):
        evaluate(
            SETTINGS,
            real_dir=no_test,
            model_dir=clip_dir,
            adapter=adapter[0],
            template=TEMPLATE,
            prefix=PREFIX,
            report_dir=tmp_path / "eval",
        )
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("problem", ["missing", "corrupt", "not an adapter"])
def test_a_missing_or_corrupt_adapter_is_refused_naming_it(problem, real_dir, clip_dir, tmp_path):
    path = tmp_path / "train" / "adapter.safetensors"
    path.parent.mkdir()
    if problem == "corrupt":
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    elif problem == "not an adapter":
        from safetensors.torch import save_file

        save_file({"weight": torch.zeros(2)}, str(path))  # a safetensors file without LoRA settings
    with pytest.raises(AdapterError, match=re.escape(str(path))):
        evaluate(
            SETTINGS,
            real_dir=real_dir,
            model_dir=clip_dir,
            adapter=path,
            template=TEMPLATE,
            prefix=PREFIX,
            report_dir=tmp_path / "eval",
        )
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("problem", ["missing", "not a record", "unknown choice"])
def test_an_adapter_without_the_record_of_its_checkpoint_choice_is_refused_naming_it(
    problem, real_dir, clip_dir, adapter, tmp_path
):
    """Every reported number says how its weights were chosen, so a run that cannot say is not scored."""
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    path = Path(shutil.copy(adapter[0], train_dir / "adapter.safetensors"))
    if problem == "not a record":
        (train_dir / KEPT_FILE).write_text("[1, 2]")
    elif problem == "unknown choice":
        write_kept(train_dir, {"checkpoint": "best_train", "checkpoint_note": "?"})
    with pytest.raises(KeptRecordError, match=re.escape(str(train_dir / KEPT_FILE))):
        evaluate(
            SETTINGS,
            real_dir=real_dir,
            model_dir=clip_dir,
            adapter=path,
            template=TEMPLATE,
            prefix=PREFIX,
            report_dir=tmp_path / "eval",
        )
    assert not (tmp_path / "eval").exists()


# --- ids that look like numbers, an empty table ---------------------------------------------------------


def test_numeric_looking_ids_are_kept_as_written(clip_dir, tmp_path):
    # FGVC Aircraft ids are digit strings with leading zeros, e.g. '0034309'.
    ids = ["0042", "0107", "1003", "0008", "0550", "0009", "0061"]
    real = make_real_dir(tmp_path / "real", classes=CLASSES[:2], test_per_class=[2, 1], ids=ids)
    model = build_classifier(clip_dir, CLASSES[:2], TEMPLATE, PREFIX, LORA, "cpu", seed=0)
    adapter = save_adapter(model, tmp_path / "adapter.safetensors")
    write_kept(tmp_path, kept_record("final", None, 4))
    evaluate(
        SETTINGS,
        real_dir=real,
        model_dir=clip_dir,
        adapter=adapter,
        template=TEMPLATE,
        prefix=PREFIX,
        report_dir=tmp_path / "eval",
    )
    manifest = raw_csv(real / "manifest.csv")
    assert (
        raw_csv(tmp_path / "eval" / "predictions.csv")["id"].tolist()
        == manifest.loc[manifest["split"] == "test", "id"].tolist()
    )


def test_metrics_of_an_empty_table_are_zero():
    names = ["a", "b"]
    empty = predictions_table(_rows([]), torch.zeros(0, 2), names)
    metrics = metrics_from_predictions(empty, names)
    assert metrics["images"] == 0 and metrics["top1"] == 0.0 and metrics["mean_per_class"] == 0.0
