"""Edits per second of each method at batch sizes 1, 2, 4, 8, measured in one run.

    python -m varireal.edit.bench [--lock data/models/lock.json] [--params params.yaml] [--dataset demo]
                                  [--rates-out benchmarks/rates/<profile>.json]

--rates-out writes what `varireal plan` reads: seconds per candidate of each method at the
profile's batch size, and bytes per stored candidate (the median `size` of the edit sets in
data/edits when there are any, else of the benchmark's own PNGs).

Uses the models of the lock (the tiny profile after `dvc repro models`) and the profile's edit
settings for the dataset, on a synthetic image with a centred elliptical mask. Each (method,
batch size) gets one warm-up batch (first calls allocate and compile kernels) and then
`--repeats` timed batches; the rate uses their median time. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import numpy as np
from PIL import Image

from varireal.edit import image_ops as ops
from varireal.edit.editors import load_editors
from varireal.edit.methods import Editors, Job, edit_batch
from varireal.edit.plan import EditItem, Source
from varireal.edit.settings import MethodSettings
from varireal.io import png_bytes, read_table, write_json
from varireal.models.load import resolve_device
from varireal.models.lock import read_lock
from varireal.params import load_params
from varireal.prompts.schema import ATTRIBUTES
from varireal.seeding import item_seed

BATCH_SIZES = (1, 2, 4, 8)


def synthetic_pair(width: int = 160, height: int = 120) -> tuple[Image.Image, Image.Image]:
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 90)], -1).astype(np.uint8)
    inside = (xx - width / 2) ** 2 / (width / 4) ** 2 + (yy - height / 2) ** 2 / (height / 4) ** 2 < 1
    return Image.fromarray(pixels), Image.fromarray(inside.astype(np.uint8) * 255, mode="L")


def bench_jobs(attribute: str, count: int, work_size: int) -> list[Job]:
    image, mask = synthetic_pair()
    square = ops.work_square(image, mask, work_size)
    source = Source("bench", Path("bench.png"), "cat", 0, Path("bench_mask.png"))
    return [
        Job(EditItem(f"bench_s{i}c0", source, attribute, "feasible", "red", "bright red", i, 0, item_seed("bench", i)), square)
        for i in range(count)
    ]


def edits_per_second(
    editors: Editors, attribute: str, settings: MethodSettings, work_size: int, batch: int, repeats: int, sizes: list[int] | None = None
) -> float:
    """batch / the median time of `repeats` timed batches (the median shrugs off a neighbour's CPU burst)."""
    jobs = bench_jobs(attribute, batch, work_size)
    warm = edit_batch(editors, attribute, jobs, settings)  # warm-up
    if sizes is not None:
        sizes.extend(len(png_bytes(edited.image)) for edited in warm)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        edit_batch(editors, attribute, jobs, settings)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lock", type=Path, default=Path("data/models/lock.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dataset", default=None, help="whose edit settings (default: params.dataset)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rates-out", type=Path, default=None, help="write the rates `varireal plan` reads")
    args = parser.parse_args()
    params = load_params(args.params)
    settings = params.edit.pick(params.profile)
    dataset = args.dataset or params.dataset
    lock = read_lock(args.lock)
    device = resolve_device(settings.device)
    print(f"profile={params.profile} device={device} work_size={settings.work_size} dataset={dataset}")
    batch_sizes = sorted({*BATCH_SIZES, settings.batch_size})
    print(f"{'method':<12}" + "".join(f"{f'batch {b}':>12}" for b in batch_sizes) + "   (edits/s)")
    at_profile_batch, sizes = {}, []
    for attribute in ATTRIBUTES:
        editors = load_editors(lock, attribute, device)
        method = settings.method(dataset, attribute)
        rates = [edits_per_second(editors, attribute, method, settings.work_size, b, args.repeats, sizes) for b in batch_sizes]
        print(f"{attribute:<12}" + "".join(f"{rate:>12.3f}" for rate in rates))
        at_profile_batch[attribute] = 1 / rates[batch_sizes.index(settings.batch_size)]
    if args.rates_out:
        write_rates(args.rates_out, params.profile, device, settings.batch_size, at_profile_batch, sizes)


def write_rates(out: Path, profile: str, device: str, batch_size: int, seconds: dict[str, float], bench_sizes: list[int]) -> None:
    stored = [int(size) for path in sorted(Path("data/edits").glob("*/*/manifest.parquet")) for size in read_table(path)["size"].dropna()]
    rates = {
        "profile": profile,
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)",
        "batch_size": batch_size,
        "measured": time.strftime("%Y-%m-%d"),
        "seconds_per_candidate": {attribute: round(value, 5) for attribute, value in seconds.items()},
        "bytes_per_candidate": int(statistics.median(stored or bench_sizes)),
        "bytes_from": "data/edits manifests" if stored else "the benchmark's own PNGs",
    }
    write_json(out, rates)
    print(f"rates -> {out}")


if __name__ == "__main__":
    main()
