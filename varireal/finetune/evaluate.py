"""Score the fine-tuned classifier on the real TEST split (which train reads only under protocol paper,
to choose its checkpoint as the paper did).

Writes into report_dir:
- predictions.csv: id, label, label_name, prediction, prediction_name, p_label, rank (classes
  scored strictly above the true one), correct: what pairing two experiments image by image
  needs, about 100 bytes per image; with `save_logits` also logits (JSON list, exact float32
  values), some 40 times that at the paper's sizes (Stanford Cars: 196 numbers per image).
  DVC caches it (dvc.yaml), so dozens of experiments do not grow the git history;
- metrics.json: top1, top5 (k = min(5, classes), named in top5_k), mean per-class accuracy, counts,
  computed FROM the predictions table (`metrics_from_predictions`), so that file reproduces them;
  and how the adapter's weights were chosen, from kept.json beside it (varireal.finetune.kept):
  `checkpoint` best_test | final | best_val and `checkpoint_note`, the sentence to print with it;
- confusion.csv: actual, predicted (class names), one row per image, for DVC's confusion template;
- per_class.csv: class_index, class_name, images, correct, accuracy (a bar plot).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from varireal.devices import resolve_device
from varireal.finetune.augment import eval_transform
from varireal.finetune.data import ImageRows, check_classes, eval_loader, read_class_names, real_rows
from varireal.finetune.kept import read_choice
from varireal.finetune.lora import load_adapter, read_adapter
from varireal.finetune.model import build_classifier
from varireal.finetune.run import predict
from varireal.io import write_json, write_table
from varireal.settings.evaluate import EvaluateParams
from varireal.settings.train import Activation

TOP_K = 5


def predictions_table(
    rows: pd.DataFrame, logits: torch.Tensor, class_names: list[str], *, save_logits: bool = True
) -> pd.DataFrame:
    """One row per image with its label, argmax prediction, softmax p of the label, rank (and logits)."""
    labels = rows["class_index"].to_numpy(dtype=np.int64)
    scores = logits.float().numpy()
    prediction = scores.argmax(axis=1)  # first maximum on ties, as torch.argmax
    p_label = torch.softmax(logits.float(), dim=1).numpy()[np.arange(len(labels)), labels]
    table = pd.DataFrame(
        {
            "id": rows["id"].to_numpy(),
            "label": labels,
            "label_name": [class_names[i] for i in labels],
            "prediction": prediction,
            "prediction_name": [class_names[i] for i in prediction],
            "p_label": p_label.astype(np.float64),
            "rank": label_ranks(scores, labels),
            "correct": prediction == labels,
        }
    )
    if save_logits:
        table["logits"] = [json.dumps([float(v) for v in row]) for row in scores]
    return table


def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How many classes score strictly higher than the true class (0 = top-1, ties in its favour)."""
    true = scores[np.arange(len(labels)), labels][:, None]
    return (scores > true).sum(axis=1)


def metrics_from_predictions(table: pd.DataFrame, class_names: list[str]) -> dict:
    """top1, top5 and mean per-class accuracy recomputed from the label, prediction and rank columns.

    Per-class accuracies go to per_class.csv, not here: 196 of them would flood `dvc exp show`.
    """
    labels = table["label"].to_numpy(dtype=np.int64)
    correct = table["prediction"].to_numpy(dtype=np.int64) == labels
    k = min(TOP_K, len(class_names))
    per_class = per_class_table(labels, correct, class_names)
    seen = per_class[per_class["images"] > 0]
    return {
        "images": len(table),
        "classes": len(class_names),
        "top1": float(correct.mean()) if len(table) else 0.0,
        "top5": float((table["rank"].to_numpy() < k).mean()) if len(table) else 0.0,
        "top5_k": k,
        "mean_per_class": float(seen["accuracy"].mean()) if len(seen) else 0.0,
    }


def per_class_table(labels: np.ndarray, correct: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    images = np.bincount(labels, minlength=len(class_names))
    hits = np.bincount(labels, weights=correct.astype(np.float64), minlength=len(class_names)).astype(np.int64)
    accuracy = np.divide(hits, images, out=np.full(len(class_names), np.nan), where=images > 0)
    return pd.DataFrame(
        {
            "class_index": np.arange(len(class_names)),
            "class_name": class_names,
            "images": images,
            "correct": hits,
            "accuracy": accuracy,
        }
    )


def evaluate(
    settings: EvaluateParams,
    *,
    real_dir: str | Path,
    model_dir: str | Path,
    adapter: str | Path,
    template: str,
    prefix: str,
    report_dir: str | Path,
    activation: Activation = "quick_gelu",
) -> dict:
    """Base model + adapter on the test split; writes the four report files, returns the metrics.

    template, activation: the train settings the adapter learned with (the class texts, the MLP activation)."""
    report_dir = Path(report_dir)
    class_names = read_class_names(real_dir)
    test = real_rows(real_dir, "test")
    if test.empty:
        raise ValueError(f"{Path(real_dir) / 'manifest.csv'}: no test image to evaluate on")
    check_classes(test, class_names, str(Path(real_dir) / "manifest.csv"))
    device = resolve_device(settings.device)
    _, lora = read_adapter(adapter)  # the settings the adapter was trained with
    choice = read_choice(adapter)  # how its weights were chosen
    model = build_classifier(model_dir, class_names, template, prefix, lora, device, seed=0, activation=activation)
    load_adapter(model, adapter)
    transform = eval_transform(
        model.image_size, model.mean, model.std, str(model.preprocess_cfg.get("interpolation", "bicubic"))
    )
    loader = eval_loader(
        ImageRows(test, transform), settings.batch_size, settings.num_workers, pin_memory=device.startswith("cuda")
    )
    logits, _ = predict(model, loader, device, settings.amp)
    table = predictions_table(test, logits, class_names, save_logits=settings.save_logits)
    metrics = {**metrics_from_predictions(table, class_names), **choice}
    write_table(report_dir / "predictions.csv", table)
    write_table(
        report_dir / "confusion.csv", table[["label_name", "prediction_name"]].set_axis(["actual", "predicted"], axis=1)
    )
    write_table(
        report_dir / "per_class.csv",
        per_class_table(table["label"].to_numpy(), table["correct"].to_numpy(), class_names),
    )
    write_json(report_dir / "metrics.json", metrics)
    return metrics
