"""Training throughput (images per second) for a few batch sizes and worker counts, in one run.

    python -m benchmarks.finetune                              # tiny CLIP, toy images, CPU
    python -m benchmarks.finetune --batch-sizes 16 64 --workers 0 4 8 --device cuda --model-dir data/models/paper/clip
    python -m benchmarks.finetune --batch-sizes 64 --workers 8 --device cuda --model-dir <clip dir> \
        --rates-out benchmarks/rates/paper.json     # seconds per step for `varireal plan`'s fine-tune hours

Builds a toy study (random images of --image-side px in the layouts the stages write: real image
files, synthetic tar shards read by offset) and, unless --model-dir is given, a tiny random CLIP,
both in a temporary directory; then times
--steps training steps (worker start-up included) of varireal.finetune.train for every combination. The
training settings are params.yaml's `train.tiny` when it has one, else the TrainParams defaults
with a small LoRA; batch size, workers and device come from the command line. Not a test.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from varireal.finetune.data import real_rows, select_training_rows
from varireal.finetune.lora import LoraParams
from varireal.finetune.run import prepare
from varireal.finetune.train import train_step
from varireal.images import png_bytes
from varireal.io import save_image, write_table
from varireal.settings.train import TrainParams
from varireal.shards import Sample, write_shard

CLASSES = ("cat", "coffee cup", "rocket", "astronaut")
DEFAULT_LORA = LoraParams(rank=4, alpha=8, dropout=0.1, target_modules=("q_proj", "v_proj"), towers=("image", "text"))


def toy_study(root: Path, per_class: int, image_side: int) -> tuple[Path, Path]:
    """real_dir (train/val per class) and one synthetic set, every edit accepted, in the filter's layout
    (one shards/synthetic-NNNNN.tar per class, manifest.parquet with each image's byte range): random
    images, fixed seed."""
    rng = np.random.default_rng(0)
    real_dir, set_dir = root / "real", root / "synthetic"
    real, synthetic = [], []
    for index, name in enumerate(CLASSES):
        samples = []
        for n in range(per_class):
            for split in ("train", "val"):
                path = f"{split}/{index}-{n}.png"
                save_image(real_dir / path, _random_image(rng, image_side))
                real.append(
                    {
                        "id": f"{split}-{index}-{n}",
                        "path": path,
                        "class_name": name,
                        "class_index": index,
                        "split": split,
                        "source": "bench",
                    }
                )
            for slot in range(2):
                record = {
                    "edit_id": f"{index}-{n}-{slot}",
                    "source_id": f"train-{index}-{n}",
                    "class_name": name,
                    "class_index": index,
                    "attribute": "background",
                    "feasibility": "feasible",
                    "value": "bench",
                    "slot": slot,
                    "candidate": 0,
                    "score": 1.0,
                    "accepted": True,
                }
                samples.append(Sample(record["edit_id"], png_bytes(_random_image(rng, image_side)), record))
        shard = f"shards/synthetic-{index:05d}.tar"
        for sample, where in zip(samples, write_shard(set_dir / shard, samples)):
            synthetic.append({**sample.record, "shard": shard, "offset": where.offset, "size": where.size})
    write_table(real_dir / "manifest.csv", pd.DataFrame(real))
    write_table(real_dir / "classes.csv", pd.DataFrame({"class_index": range(len(CLASSES)), "class_name": CLASSES}))
    write_table(set_dir / "manifest.parquet", pd.DataFrame(synthetic))
    return real_dir, set_dir


def _random_image(rng: np.random.Generator, side: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (side, side * 4 // 3, 3), dtype=np.uint8))


def base_settings() -> TrainParams:
    try:
        from varireal.settings.whole import load_all_params

        return load_all_params().train.pick("tiny", "demo")
    except (ValueError, AttributeError):
        return TrainParams(lora=DEFAULT_LORA, device="cpu", amp=False)


def images_per_second(
    settings: TrainParams, selection: pd.DataFrame, val: pd.DataFrame, model_dir: Path, steps: int
) -> tuple[float, float]:
    """Images per second and seconds per step over `steps` steps, worker start-up included (as a real run pays it).

    Timing only after a warm-up would count batches the workers prefetched meanwhile
    (2 per worker) as free, which flatters many workers on a short run.
    """
    import torch

    run = prepare(settings, selection, val, model_dir=model_dir, class_names=list(CLASSES), prefix="")
    started, images = time.perf_counter(), 0
    for _, batch in zip(range(steps), run.loader):
        train_step(run, *batch)
        images += len(batch[0])
    if run.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return images / elapsed, elapsed / steps


def write_rates(path: Path, seconds_per_step: dict[int, float], device: str) -> None:
    """Merge `train_seconds_per_step` (per batch size, the fastest worker count) into a rates file."""
    import json

    from varireal.io import write_json

    rates = json.loads(path.read_text()) if path.is_file() else {}
    rates["train_seconds_per_step"] = {str(batch): round(value, 4) for batch, value in sorted(seconds_per_step.items())}
    rates["train_measured_on"] = f"{device}, {time.strftime('%Y-%m-%d')}, python -m benchmarks.finetune"
    write_json(path, rates)


def parser() -> argparse.ArgumentParser:
    """The command line (docs' commands are checked against it: tests/test_docs_commands.py)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per setting")
    parser.add_argument("--device", default=None, help="auto|cpu|cuda (default: the settings' own)")
    parser.add_argument("--image-side", type=int, default=160, help="short side of the toy images (px)")
    parser.add_argument("--model-dir", type=Path, default=None, help="an open_clip directory (default: a tiny CLIP)")
    parser.add_argument(
        "--rates-out", type=Path, default=None, help="merge seconds per step into this rates file (varireal plan)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = base_settings()
    with tempfile.TemporaryDirectory(prefix="varireal-bench-") as tmp:
        root = Path(tmp)
        per_class = max(args.batch_sizes) * args.steps // (2 * len(CLASSES)) + 1  # all steps inside one epoch
        real_dir, set_dir = toy_study(root, per_class, args.image_side)
        model_dir = args.model_dir
        if model_dir is None:
            from varireal.models.clip import build_tiny_clip

            model_dir = root / "clip"
            build_tiny_clip(model_dir, seed=0)
        selection = select_training_rows(
            real_dir,
            {"feasible": set_dir},
            "feasible",
            data=settings.data,
            images_per_class=None,
            real_shots=None,
            seed=settings.seed,
        )
        val = real_rows(real_dir, "val")
        print(
            f"{'batch':>6} {'workers':>8} {'images/s':>10} {'s/step':>8}   ({len(selection)} training images, "
            f"{args.image_side} px, data={settings.data}, batches={settings.batches})"
        )
        fastest: dict[int, float] = {}
        for batch_size, workers in itertools.product(args.batch_sizes, args.workers):
            update = {"batch_size": batch_size, "num_workers": workers, "epochs": 1, "steps": None}
            if args.device:
                update["device"] = args.device
            rate, per_step = images_per_second(
                settings.model_copy(update=update), selection, val, model_dir, args.steps
            )
            fastest[batch_size] = min(per_step, fastest.get(batch_size, per_step))
            print(f"{batch_size:>6} {workers:>8} {rate:>10.1f} {per_step:>8.3f}", flush=True)
    if args.rates_out:
        write_rates(args.rates_out, fastest, args.device or settings.device)
        print(f"{args.rates_out}: train_seconds_per_step {fastest}")


if __name__ == "__main__":
    main()
