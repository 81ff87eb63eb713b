"""Every stage's seconds, fixed and per unit, from two real `dvc repro` runs of the demo at two sizes.

    python -m benchmarks.pipeline [--sizes 4 12] [-S key=value ...] [--rates-out benchmarks/rates/<profile>.json]

Each run is what a fresh clone does: the working tree's tracked files copied into a new git repository,
an empty DVC cache and an empty VARIREAL_CACHE (tiny models are built again; hub weights come from the
Hugging Face cache as they are), then `dvc repro`. The demo gets `size` training images per class and
half as many val and test images. A stage's seconds run from DVC's "Running stage" line to the next one
(its process, imports, models, work, and DVC hashing and caching its outputs); DVC's own start-up runs
up to the first. Per stage, the line through the two runs' (units, seconds) splits fixed from per-unit
cost (varireal.run_time), with units as `varireal plan` counts them except candidates, which are the
rows each edit set made. --rates-out merges `stages` and `dvc_start_seconds` into the rates file that
`varireal plan` reads. A benchmark, not a test: it asserts nothing; it takes about five minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from varireal import workspace
from varireal.cost_plan import pipeline_work
from varireal.io import read_table, write_json
from varireal.params import METHOD_FILE, apply_override
from varireal.run_time import StageCost, Work, fit
from varireal.settings.whole import load_all_params
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES

RUNNING = "Running stage '"


@dataclass(frozen=True)
class TimedRun:
    profile: str
    dvc_start: float
    stages: dict[str, float]  # seconds per stage, in the order DVC ran them
    work: dict[str, Work]


def stage_seconds(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Run a dvc command, timing each stage from its "Running stage" line to the next (the last to the exit)."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            if RUNNING in line:  # a progress bar's last frame may precede it on the line
                marks.append((line.rpartition(RUNNING)[2].split("'")[0], time.perf_counter() - start))
            sys.stdout.write(line)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {cwd} (exit {process.returncode})")
    end = time.perf_counter() - start
    ends = [at for _, at in marks[1:]] + [end]
    return (marks[0][1] if marks else end), {name: round(stop - at, 3) for (name, at), stop in zip(marks, ends)}


def fresh_clone(root: Path, into: Path, overrides: list[str]) -> None:
    """The working tree's tracked files in a new git repository, with `overrides` written into the params files."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True)
    for name in sorted(filter(None, listed.stdout.split("\0"))):
        if (root / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, into / name)
    write_overrides(into, overrides)
    git = ["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=into, check=True)
    subprocess.run([*git, "add", "-A"], cwd=into, check=True)
    subprocess.run([*git, "commit", "-qm", "benchmark"], cwd=into, check=True)


def write_overrides(repo: Path, overrides: list[str]) -> None:
    """`key=value` into params.yaml, `method.yaml:key=value` into method.yaml, as `dvc exp run -S` writes them."""
    files = {name: yaml.safe_load((repo / name).read_text()) for name in ("params.yaml", METHOD_FILE)}
    for override in overrides:
        key = override.partition("=")[0]
        name = METHOD_FILE if key.startswith(f"{METHOD_FILE}:") else "params.yaml"
        apply_override(files[name], override, repo / name)
    for name, raw in files.items():
        (repo / name).write_text(yaml.safe_dump(raw, sort_keys=False))


def demo_size(size: int) -> list[str]:
    half = max(1, size // 2)
    return [
        "dataset=demo",
        f"{METHOD_FILE}:fetch.demo.train_per_class={size}",
        f"{METHOD_FILE}:fetch.demo.val_per_class={half}",
        f"{METHOD_FILE}:fetch.demo.test_per_class={half}",
    ]


def made_candidates(repo: Path) -> dict[tuple[str, str], float]:
    """Per set, the candidates made (early stop's `not_needed` rows cost nothing)."""
    made = {}
    for a in ATTRIBUTES:
        for f in FEASIBILITIES:
            status = read_table(repo / workspace.edit_set_dir(a, f) / "manifest.parquet")["status"]
            made[a, f] = float((status != "not_needed").sum())
    return made


def timed_run(root: Path, overrides: list[str]) -> TimedRun:
    with tempfile.TemporaryDirectory(prefix="varireal-pipeline-") as scratch:
        repo, cache = Path(scratch) / "repo", Path(scratch) / "cache"
        repo.mkdir()
        fresh_clone(root, repo, overrides)
        bin_dir = Path(sys.executable).parent  # the stages' `python` is this environment's
        env = os.environ | {
            "VARIREAL_CACHE": str(cache),
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        dvc = str(bin_dir / "dvc")
        start, stages = stage_seconds([dvc, "repro"], repo, env)
        params = load_all_params(repo / "params.yaml")
        work = pipeline_work(params, made_candidates(repo), repo / workspace.REAL)
    return TimedRun(params.profile, start, stages, work)


def fit_runs(small: TimedRun, large: TimedRun) -> dict[str, StageCost]:
    costs = {}
    for name, seconds in large.stages.items():
        points = (small.work[name].count, small.stages[name]), (large.work[name].count, seconds)
        costs[name] = fit(*points, large.work[name].unit)
    return costs


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"


def write_rates(path: Path, profile: str, costs: dict[str, StageCost], dvc_start: float, sizes: list[int]) -> None:
    rates = json.loads(path.read_text()) if path.is_file() else {}
    if rates.get("profile", profile) != profile:
        raise SystemExit(f"{path} holds rates of profile {rates['profile']}; these are {profile}'s: name another file")
    rates["profile"] = profile
    rates["stages"] = {name: asdict(cost) for name, cost in sorted(costs.items())}
    rates["dvc_start_seconds"] = round(dvc_start, 3)
    rates["stages_measured"] = (
        f"{device_name()}, {time.strftime('%Y-%m-%d')}, python -m benchmarks.pipeline --sizes "
        + " ".join(map(str, sizes))
    )
    write_json(path, rates)
    print(f"rates -> {path}")


def parser() -> argparse.ArgumentParser:
    """The command line (docs' commands are checked against it: tests/test_docs_commands.py)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[4, 12], help="demo training images per class")
    parser.add_argument("-S", "--set-param", action="append", default=[], help="key=value, as dvc exp run -S")
    parser.add_argument("--rates-out", type=Path, default=None, help="merge the stage timings into this rates file")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    small, large = sorted(args.sizes)
    runs = [timed_run(Path.cwd(), [*args.set_param, *demo_size(size)]) for size in (small, large)]
    costs = fit_runs(*runs)
    print(f"\n{'stage':<28}{'s at ' + str(small):>10}{'s at ' + str(large):>10}{'fixed s':>10}{'s/unit':>10}  unit")
    for name, cost in costs.items():
        print(
            f"{name:<28}{runs[0].stages[name]:>10.1f}{runs[1].stages[name]:>10.1f}"
            f"{cost.fixed:>10.1f}{cost.per_unit:>10.4f}  {cost.unit}"
        )
    print(f"{'dvc start':<28}{runs[0].dvc_start:>10.1f}{runs[1].dvc_start:>10.1f}")
    if args.rates_out:
        write_rates(args.rates_out, runs[0].profile, costs, (runs[0].dvc_start + runs[1].dvc_start) / 2, [small, large])


if __name__ == "__main__":
    main()
