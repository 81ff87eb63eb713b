"""Edits per second of each method at batch sizes 1, 2, 4, 8, measured in one run.

    python -m benchmarks.edit [--lock data/models/lock.json] [--params params.yaml] [--dataset demo]
                              [--rates-out benchmarks/rates/<profile>.json]
    python -m benchmarks.edit --arch full   # the paper's models at real size: parameters, fp16 weights

--arch full builds every paper role from its real configuration on the meta device
(benchmarks.full_size: exact shapes, no memory, no download) and prints parameters and
fp16 weight memory per role, per edit method and for the judge. Seconds per candidate at real
size need the weights on a GPU: run the lock mode there after `dvc repro models`.

--rates-out writes what `varireal plan` reads: seconds per candidate of each method at the
profile's batch size, and bytes per stored candidate (the median `size` of the edit sets in
data/edits when there are any, else of the benchmark's own PNGs).

Uses the models of the lock (the tiny profile after `dvc repro models`) and the profile's edit
settings for the dataset, on a synthetic image with a centred elliptical mask; the judge (the
lock's VLM) answers the filter's four questions at filter.<profile>.batch_size and at batch 1. Each (method,
batch size) gets one warm-up batch (first calls allocate and compile kernels) and then
`--repeats` timed batches; the rate uses their median time. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.full_size import BUILDERS, role_size
from varireal.attributes import image_ops as ops
from varireal.attributes.item import EditItem, Source
from varireal.attributes.pipelines import Editors, editor_roles, load_editors
from varireal.attributes.registry import attribute_method
from varireal.attributes.steps import Job
from varireal.cost_plan import accepted_edit_costs
from varireal.devices import resolve_device
from varireal.images import png_bytes
from varireal.io import read_table, write_json
from varireal.judge.questions import Candidate, Questions, questions_for
from varireal.judge.yes_no import YesNoJudge, judge_batch
from varireal.models.lock import read_lock
from varireal.models.vlm import load_vlm
from varireal.seeding import item_seed
from varireal.settings.edit import EditParams
from varireal.settings.filter import FilterParams
from varireal.settings.whole import load_all_params
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES

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
        Job(
            EditItem(f"bench_s{i}c0", source, attribute, "feasible", "red", "bright red", i, 0, item_seed("bench", i)),
            square,
        )
        for i in range(count)
    ]


def edits_per_second(
    editors: Editors,
    attribute: str,
    settings: Any,
    work_size: int,
    batch: int,
    repeats: int,
    sizes: list[int] | None = None,
) -> float:
    """batch / the median time of `repeats` timed batches (the median shrugs off a neighbour's CPU burst)."""
    jobs = bench_jobs(attribute, batch, work_size)
    warm = attribute_method(attribute).edit(editors, jobs, settings)  # warm-up
    if sizes is not None:
        sizes.extend(len(png_bytes(edited.image)) for edited in warm)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        attribute_method(attribute).edit(editors, jobs, settings)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def judged_per_second(judge: YesNoJudge, settings: FilterParams, work_size: int, batch: int, repeats: int) -> float:
    """Candidates the judge answers per second (4 questions each) in batches of `batch`, as the filter asks."""
    image, _ = synthetic_pair()
    data = png_bytes(image.resize((work_size, work_size)))
    candidates = [
        Candidate(f"bench_{i}", Path(""), -1, len(data), "cat", "color", "feasible", "red") for i in range(batch)
    ]
    questions = {c.edit_id: questions_for(c, Questions(settings.templates()), "") for c in candidates}
    images = {c.edit_id: data for c in candidates}
    judge_batch(judge, candidates, questions, settings, images)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        judge_batch(judge, candidates, questions, settings, images)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def parser() -> argparse.ArgumentParser:
    """The command line (docs' commands are checked against it: tests/test_docs_commands.py)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edit", description=__doc__.split("\n")[0])
    parser.add_argument("--lock", type=Path, default=Path("data/models/lock.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dataset", default=None, help="whose edit settings (default: params.dataset)")
    parser.add_argument("--feasibility", choices=FEASIBILITIES, default="feasible", help="whose edit settings")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rates-out", type=Path, default=None, help="write the rates `varireal plan` reads")
    parser.add_argument("--acceptance", type=float, default=0.7, help="assumed share of candidates the judge accepts")
    parser.add_argument(
        "--arch",
        choices=("lock", "full"),
        default="lock",
        help="lock: time the lock's models; full: real-size parameters and weight memory (meta device)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.arch == "full":
        print("\n".join(full_size_lines()))
        return
    params = load_all_params(args.params)
    settings = params.edit.pick(params.profile)
    dataset = args.dataset or params.dataset
    lock = read_lock(args.lock)
    device = resolve_device(settings.device)
    print(
        f"profile={params.profile} device={device} work_size={settings.work_size} dataset={dataset} feasibility={args.feasibility}"
    )
    batch_sizes = sorted({*BATCH_SIZES, settings.batch_size})
    print(f"{'method':<12}" + "".join(f"{f'batch {b}':>12}" for b in batch_sizes) + "   (edits/s)")
    at_profile_batch, reference, memory, sizes = {}, {}, {}, []
    for attribute in ATTRIBUTES:
        editors = load_editors(lock, attribute_method(attribute).editors, device, compile=settings.compile)
        method = settings.method(dataset, attribute, args.feasibility)
        rates = []
        for b in batch_sizes:
            with peak_memory(device) as peak:
                rates.append(edits_per_second(editors, attribute, method, settings.work_size, b, args.repeats, sizes))
            memory[attribute, b] = peak.get("bytes")
        print(f"{attribute:<12}" + "".join(f"{rate:>12.3f}" for rate in rates))
        at_profile_batch[attribute] = 1 / rates[batch_sizes.index(settings.batch_size)]
        # the reference's setting: batch 1 with every model offloaded to the CPU between uses (CUDA only)
        if device.startswith("cuda"):
            del editors  # one copy of the method's models at a time
            torch.cuda.empty_cache()
            editors = load_editors(lock, attribute_method(attribute).editors, device, offload=True)
        reference[attribute] = 1 / edits_per_second(editors, attribute, method, settings.work_size, 1, args.repeats)
    if device.startswith("cuda"):
        print(f"{'method':<12}" + "".join(f"{f'batch {b}':>12}" for b in batch_sizes) + "   (peak GPU GB)")
        for attribute in ATTRIBUTES:
            print(f"{attribute:<12}" + "".join(f"{memory[attribute, b] / 1e9:>12.2f}" for b in batch_sizes))
        del editors
        torch.cuda.empty_cache()
    judging = params.filter.pick(params.profile)
    judge = YesNoJudge(*load_vlm(lock.path("vlm"), device))
    judge_rates = {
        b: judged_per_second(judge, judging, settings.work_size, b, args.repeats)
        for b in sorted({1, judging.batch_size})
    }
    print(
        f"judge: {judge_rates[judging.batch_size]:.3f} candidates/s at filter batch {judging.batch_size} "
        f"(4 questions each), {judge_rates[1]:.3f} at batch 1"
    )
    judge_seconds = (1 / judge_rates[judging.batch_size], 1 / judge_rates[1])
    print("\n".join(accepted_edit_lines(at_profile_batch, reference, args.acceptance, settings, device, judge_seconds)))
    if args.rates_out:
        write_rates(
            args.rates_out, params.profile, device, settings.batch_size, at_profile_batch, sizes, judge_seconds[0]
        )


@contextmanager
def peak_memory(device: str) -> Iterator[dict[str, int]]:
    """{"bytes": the peak CUDA memory allocated inside the block} on CUDA; {} elsewhere."""
    found: dict[str, int] = {}
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    yield found
    if cuda:
        torch.cuda.synchronize(device)
        found["bytes"] = torch.cuda.max_memory_allocated(device)


def accepted_edit_lines(
    seconds: dict[str, float],
    reference: dict[str, float],
    acceptance: float,
    settings: EditParams,
    device: str,
    judge: tuple[float, float],
) -> list[str]:
    setting = "batch 1, model CPU offload" if device.startswith("cuda") else "batch 1 (offload needs CUDA)"
    lines = [
        f"device-seconds per accepted edit at acceptance {acceptance} ({settings.candidates_per_slot} candidates per slot; "
        f"reference: {setting}, keeps a slot after 3 tries)",
        f"{'method':<12}{'ours':>12}{'early stop':>12}{'reference':>12}",
    ]
    for attribute in ATTRIBUTES:
        cost = accepted_edit_costs(
            seconds[attribute], reference[attribute], acceptance, settings.candidates_per_slot, judge
        )
        lines.append(f"{attribute:<12}{cost['ours']:>12.3f}{cost['early_stop']:>12.3f}{cost['reference']:>12.3f}")
    lines.append(
        f"ours: every slot gets all its candidates (early_stop off); early stop: a slot stops at its first pass "
        f"(edit.early_stop, {'on' if settings.early_stop else 'off'} here); each judged candidate's time included"
    )
    return lines


def full_size_lines() -> list[str]:
    """Parameters and fp16 weight memory of each paper role, each method's roles and the judge."""
    sizes = {role: role_size(role) for role in BUILDERS}
    lines = [f"{'role':<12}{'parameters':>16}{'fp16 weights':>14}"]
    lines += [f"{s.role:<12}{s.parameters:>16,}{s.gigabytes():>11.2f} GB" for s in sizes.values()]
    lines.append("")
    groups = {f"edit {attribute}": editor_roles(attribute_method(attribute).editors) for attribute in ATTRIBUTES}
    groups["judge"] = ["vlm"]
    groups["edit texture + judge"] = [
        *editor_roles(attribute_method("texture").editors),
        "vlm",
    ]  # one process editing and judging
    for name, roles in groups.items():
        total = sum(sizes[role].parameters for role in roles)
        lines.append(
            f"{name:<22}{total / 1e9:>6.2f} B parameters {total * 2 / 1e9:>7.2f} GB fp16  ({' + '.join(roles)})"
        )
    return lines


def write_rates(
    out: Path,
    profile: str,
    device: str,
    batch_size: int,
    seconds: dict[str, float],
    bench_sizes: list[int],
    judge_seconds: float,
) -> None:
    stored = [
        int(size)
        for path in sorted(Path("data/edits").glob("*/*/manifest.parquet"))
        for size in read_table(path)["size"].dropna()
    ]
    rates = json.loads(out.read_text()) if out.is_file() else {}  # keeps what the other benchmarks measured
    rates |= {
        "profile": profile,
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)",
        "batch_size": batch_size,
        "measured": time.strftime("%Y-%m-%d"),
        "seconds_per_candidate": {attribute: round(value, 5) for attribute, value in seconds.items()},
        "judge_seconds_per_candidate": round(judge_seconds, 5),
        "bytes_per_candidate": int(statistics.median(stored or bench_sizes)),
        "bytes_from": "data/edits manifests" if stored else "the benchmark's own PNGs",
    }
    write_json(out, rates)
    print(f"rates -> {out}")


if __name__ == "__main__":
    main()
