"""Loose files vs tar shards under DVC, and tar+offset vs parquet for random reads.

    python -m benchmarks.shards                      # 20,000 images
    python -m benchmarks.shards --images 20000 100000

For each N: N synthetic images (incompressible random bytes, sized like real edits) and their
JSON records, as (a) loose files, `images/<key>.png` + `records/<key>.json` (the old layout),
and (b) tar shards written by `varireal.shards.write_shard` plus their offset index. Each
layout gets its own git + DVC repo and its own storage directory behind a real SSH server on
localhost (tests/servers.py: asyncssh, in a child process), and is timed through `dvc add`,
`dvc commit` (no change), a no-op `dvc status`, `dvc push`, and `dvc pull` into a fresh
`git clone`; next to them the same bytes copied by `cp -r`, and downloaded by `scp -r` and
`rsync -a` over the same SSH server.
Then 1000 random images are read back: loose open+read, `read_member` by offset, and parquet
(images as a binary column, row groups of 64 and of 1000 rows).

Times are seconds measured once in this run, `dvc` commands as separate processes (their
~1-2 s of start-up included, as a user sees them), wall clock and CPU (this process and the
commands it ran; the SSH server's share is not counted), so that a busy machine shows as wall >> CPU.
Files are in the page cache (just written).
Needs OpenSSH's scp (the client only; rsync if installed), and the repository checkout
(run from its root: tests/servers.py, with pytest installed). Everything lives under one temporary directory,
deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests import servers  # the same SSH server the remote tests use; a benchmark may import tests, the library never
from varireal.shards import Sample, encode_record, read_member, write_shard

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
LAYOUTS = ("loose", "shards")


# --- the synthetic set ------------------------------------------------------------------------


def key_of(index: int) -> str:
    return f"{index:08d}"


def image_of(index: int, size: int) -> bytes:
    """Incompressible bytes, the same for an index in every layout (PNG edits barely compress)."""
    return np.random.default_rng(index).bytes(size)


def record_of(index: int) -> dict:
    """A record shaped like an edit manifest row (~300 bytes of JSON)."""
    return {
        "id": key_of(index),
        "source": f"train/cat/{index % 977:06d}.jpg",
        "class_name": "cat",
        "attr": "color",
        "feas": "infeasible",
        "value": "neon pink",
        "description": "a cat whose fur is a glowing neon pink",
        "prompt": "a photo of a cat, neon pink fur, high quality",
        "seed": index,
        "slot": index // 4,
        "candidate": index % 4,
        "status": "ok",
    }


def write_loose(folder: Path, images: int, image_bytes: int) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "records").mkdir()
    for index in range(images):
        (folder / "images" / f"{key_of(index)}.png").write_bytes(image_of(index, image_bytes))
        (folder / "records" / f"{key_of(index)}.json").write_bytes(encode_record(record_of(index)))


@dataclass(frozen=True)
class Where:
    """One image in the shards: what the index.csv row says."""

    shard: Path
    offset: int
    size: int


def write_shards(folder: Path, images: int, image_bytes: int, per_shard: int) -> list[Where]:
    """Shards of `per_shard` samples and `index.csv` (key, shard, offset, size), as a stage would."""
    folder.mkdir(parents=True)
    index: list[Where] = []
    rows = []
    for number, start in enumerate(range(0, images, per_shard)):
        shard = folder / f"shard-{number:06d}.tar"
        samples = (
            Sample(key_of(i), image_of(i, image_bytes), record_of(i))
            for i in range(start, min(start + per_shard, images))
        )
        for located in write_shard(shard, samples):
            index.append(Where(shard, located.offset, located.size))
            rows.append((located.key, shard.name, located.offset, located.size))
    with open(folder / "index.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("key", "shard", "offset", "size"))
        writer.writerows(rows)
    return index


def write_parquet(path: Path, images: int, image_bytes: int, row_group: int) -> None:
    # No compression: the images are already compressed, so this is parquet's best case.
    schema = pa.schema([("key", pa.string()), ("image", pa.binary()), ("record", pa.string())])
    step = row_group * max(1, 1000 // row_group)  # whole row groups per write: each one is `row_group` rows
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for start in range(0, images, step):
            batch = range(start, min(start + step, images))
            table = pa.table(
                {
                    "key": [key_of(i) for i in batch],
                    "image": [image_of(i, image_bytes) for i in batch],
                    "record": [encode_record(record_of(i)).decode() for i in batch],
                },
                schema=schema,
            )
            writer.write_table(table, row_group_size=row_group)


# --- commands ---------------------------------------------------------------------------------


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(args)}` failed ({result.returncode}) in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


@dataclass(frozen=True)
class Took:
    """Wall seconds, and CPU seconds of this process and the commands it ran (not sshd's)."""

    wall: float
    cpu: float


def cpu_now() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(action: Callable[[], object]) -> Took:
    # CPU time next to wall time: on a shared machine the wall clock also counts other jobs.
    wall, cpu = time.perf_counter(), cpu_now()
    action()
    return Took(time.perf_counter() - wall, cpu_now() - cpu)


@dataclass
class Context:
    work: Path
    server: servers.SSHServer
    env: dict[str, str]
    cache_type: str | None  # DVC's cache.type for both repos; None: DVC's default (reflink,copy)

    def dvc(self, *args: str, cwd: Path) -> Took:
        return timed(lambda: run([sys.executable, "-m", "dvc", *args], cwd, self.env))

    def sh(self, *args: str, cwd: Path | None = None) -> Took:
        return timed(lambda: run(list(args), cwd or self.work, self.env))


def make_env(work: Path, server) -> dict[str, str]:
    env = {
        **os.environ,
        **GIT_ENV,
        **server.env,
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(work / "dvc-site-cache"),
    }
    env.pop("SSH_AUTH_SOCK", None)  # offer only the server's test key
    return env


def remove(*paths: Path) -> None:
    # rm -rf: several times faster than shutil.rmtree on 10^5 files
    subprocess.run(["rm", "-rf", "--", *map(str, paths)], check=True)


def progress(message: str) -> None:
    print(f"[benchmarks.shards {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def empty_status(ctx: Context) -> Took:
    """`dvc status` of a repo that tracks nothing: the fixed cost in every dvc command below."""
    empty = ctx.work / "empty"
    empty.mkdir()
    ctx.sh("git", "init", "-q", cwd=empty)
    ctx.dvc("init", "-q", cwd=empty)
    took = ctx.dvc("status", "-q", cwd=empty)
    remove(empty)
    return took


def dvc_times(ctx: Context, layout: str, write: Callable[[Path], object]) -> tuple[dict[str, Took], Path]:
    """Time per operation for one layout; returns the data set's folder (kept for the reads)."""
    root = ctx.work / layout
    repo, storage, clone = root / "repo", root / "storage", root / "clone"
    storage.mkdir(parents=True)
    repo.mkdir()
    ctx.sh("git", "init", "-q", "-b", "main", cwd=repo)
    ctx.dvc("init", "-q", cwd=repo)
    if ctx.cache_type:  # --local: config.local is copied into the clone below
        ctx.dvc("config", "--local", "cache.type", ctx.cache_type, cwd=repo)
    times: dict[str, Took] = {}
    data = repo / "data" / "set"
    times["write the set (python)"] = timed(lambda: write(data))
    times["dvc add (first)"] = ctx.dvc("add", "-q", "data/set", cwd=repo)
    progress(f"{layout}: dvc add {times['dvc add (first)'].wall:.2f} s")
    ctx.sh("git", "add", "-A", cwd=repo)
    ctx.sh("git", "commit", "-qm", "set", cwd=repo)
    times["dvc commit (no change)"] = ctx.dvc("commit", "-f", "-q", cwd=repo)
    times["dvc status (no change)"] = ctx.dvc("status", "-q", cwd=repo)  # -q: exits 1 if anything changed
    ctx.dvc("remote", "add", "-d", "--local", "storage", ctx.server.url(storage), cwd=repo)
    for option, value in ctx.server.remote_settings.items():
        ctx.dvc("remote", "modify", "--local", "storage", option, value, cwd=repo)
    times["dvc push (ssh)"] = ctx.dvc("push", "-q", cwd=repo)
    progress(f"{layout}: dvc push {times['dvc push (ssh)'].wall:.2f} s")
    ctx.sh("git", "clone", "-q", str(repo), str(clone))
    shutil.copy(repo / ".dvc" / "config.local", clone / ".dvc" / "config.local")  # the same remote and cache.type
    times["dvc pull (fresh clone, ssh)"] = ctx.dvc("pull", "-q", cwd=clone)
    progress(f"{layout}: dvc pull {times['dvc pull (fresh clone, ssh)'].wall:.2f} s")
    times["dvc status (clone, after pull)"] = ctx.dvc("status", "-q", cwd=clone)
    remove(clone)  # room on disk for the copies
    times["cp -r (local)"] = ctx.sh("cp", "-r", str(data), str(root / "cp"))
    ssh = ["-F", str(ctx.server.ssh_config)]
    times["scp -r (download, same sshd)"] = ctx.sh(
        "scp", "-q", "-r", *ssh, f"{ctx.server.host}:{data}", str(root / "scp")
    )
    if shutil.which("rsync"):
        times["rsync -a (download, same sshd)"] = ctx.sh(
            "rsync", "-a", "-e", " ".join(["ssh", *ssh]), f"{ctx.server.host}:{data}/", str(root / "rsync")
        )
    progress(f"{layout}: copies done")
    remove(*(root / folder for folder in ("cp", "scp", "rsync", "storage")))
    progress(
        f"{layout}: " + "; ".join(f"{name} {took.wall:.2f} s (cpu {took.cpu:.2f})" for name, took in times.items())
    )
    return times, data


# --- random reads -----------------------------------------------------------------------------


def read_loose(data: Path, picks: list[int]) -> list[bytes]:
    out = []
    for index in picks:
        with open(data / "images" / f"{key_of(index)}.png", "rb") as handle:
            out.append(handle.read())
    return out


def read_shards(index: list[Where], picks: list[int]) -> list[bytes]:
    return [read_member(index[i].shard, index[i].offset, index[i].size) for i in picks]


def read_parquet(path: Path, picks: list[int]) -> list[bytes]:
    # One open file, as a data loader worker keeps it; each image costs its whole row group.
    parquet = pq.ParquetFile(path)
    sizes = [parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)]
    starts = np.cumsum([0, *sizes])  # the first row of each group, from the file's own metadata
    out = []
    for index in picks:
        group = int(np.searchsorted(starts, index, side="right")) - 1
        out.append(parquet.read_row_group(group, columns=["image"]).column(0)[index - int(starts[group])].as_py())
    return out


def check(name: str, got: list[bytes], picks: list[int], image_bytes: int) -> None:
    for index, data in list(zip(picks, got))[:20]:
        if data != image_of(index, image_bytes):
            raise AssertionError(f"{name}: image {key_of(index)} read back wrong ({len(data)} bytes)")


def timed_reads(name: str, read: Callable[[], list[bytes]], picks: list[int], image_bytes: int) -> Took:
    got: list[bytes] = []
    took = timed(lambda: got.extend(read()))
    check(name, got, picks, image_bytes)
    return took


# --- the table --------------------------------------------------------------------------------


def folder_stats(folder: Path) -> tuple[int, int]:
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a is not None and b else "-"


def cells(took: Took | None) -> str:
    return f"{took.wall:>9.2f} {took.cpu:>8.2f}" if took is not None else f"{'-':>9} {'-':>8}"


WIDTH = 32
BASELINES = ("cp -r (local)", "scp -r (download, same sshd)", "rsync -a (download, same sshd)")
PULL = "dvc pull (fresh clone, ssh)"


def dvc_table(times: dict[str, dict[str, Took]]) -> list[str]:
    lines = [f"{'seconds':<{WIDTH}} {'loose':>9} {'cpu':>8} {'shards':>9} {'cpu':>8} {'loose/shards':>13}"]
    for name in next(iter(times.values())):
        loose, shards = times.get("loose", {}).get(name), times.get("shards", {}).get(name)
        lines.append(
            f"{name:<{WIDTH}} {cells(loose)} {cells(shards)} {ratio(loose and loose.wall, shards and shards.wall):>13}"
        )
    for baseline in BASELINES:
        if all(baseline in took for took in times.values()):
            pulls = [
                ratio(times[layout][PULL].wall, times[layout][baseline].wall) if layout in times else "-"
                for layout in LAYOUTS
            ]
            lines.append(f"{'pull / ' + baseline.split(' (')[0]:<{WIDTH}} {pulls[0]:>9} {'':>8} {pulls[1]:>9}")
    return lines


def reads_table(reads: dict[str, Took], count: int) -> list[str]:
    lines = [f"{f'random read of {count} images':<{WIDTH}} {'total ms':>9} {'us/image':>9} {'vs loose':>9}"]
    loose = reads.get("loose files (open+read)")
    for name, took in reads.items():
        lines.append(
            f"{name:<{WIDTH}} {took.wall * 1e3:>9.1f} {took.wall * 1e6 / count:>9.0f} {ratio(took.wall, loose and loose.wall):>9}"
        )
    return lines


def goals(shards: dict[str, Took], empty: Took) -> str:
    status, pull, copy = (
        shards["dvc status (no change)"].wall,
        shards[PULL].wall,
        shards["scp -r (download, same sshd)"].wall,
    )
    return (
        f"goals (shards): no-op dvc status {status:.2f} s (< 2 s: {'met' if status < 2 else 'NOT met'}; "
        f"{status - empty.wall:+.2f} s over an empty repo's); "
        f"pull {pull / copy:.1f}x scp -r (<= 2x: {'met' if pull <= 2 * copy else 'NOT met'})"
    )


def table(
    args: argparse.Namespace,
    images: int,
    times: dict[str, dict[str, Took]],
    stats: dict[str, tuple[int, int]],
    reads: dict[str, Took],
    empty: Took,
    load: tuple[float, float],
) -> str:
    files = ", ".join(
        f"{layout} {stats[layout][0]} files / {stats[layout][1] / 2**20:.0f} MiB"
        for layout in LAYOUTS
        if layout in stats
    )
    lines = [
        f"## {images} images of {args.image_bytes} B, {args.shard_images} per shard ({files}); "
        f"cache.type {args.cache_type or 'default (reflink,copy)'}",
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at start, {load[1]:.1f} at end; `dvc status` of an empty repo "
        f"{empty.wall:.2f} s (cpu {empty.cpu:.2f}); cpu = this process and its commands, not sshd",
        "",
        *dvc_table(times),
        "",
        *reads_table(reads, args.reads),
    ]
    if "shards" in times:
        lines += ["", goals(times["shards"], empty)]
    return "\n".join(lines)


def bench(args: argparse.Namespace, images: int, work: Path) -> str:
    # In a child process: its CPU time stays out of this process's (the table's cpu column).
    with servers.start_ssh_server_process(work / "ssh-server") as server:
        ctx = Context(work, server, make_env(work, server), args.cache_type)
        load_start = os.getloadavg()[0]
        empty = empty_status(ctx)
        times: dict[str, dict[str, Took]] = {}
        stats: dict[str, tuple[int, int]] = {}
        reads: dict[str, Took] = {}
        picks = random.Random(0).sample(range(images), min(args.reads, images))
        writers = {
            "loose": lambda folder: write_loose(folder, images, args.image_bytes),
            "shards": lambda folder: shard_index.extend(
                write_shards(folder, images, args.image_bytes, args.shard_images)
            ),
        }
        shard_index: list[Where] = []
        for layout in args.layouts:
            progress(f"{layout}: {images} images")
            times[layout], data = dvc_times(ctx, layout, writers[layout])
            stats[layout] = folder_stats(data)
            if layout == "loose":
                reads["loose files (open+read)"] = timed_reads(
                    layout, lambda data=data: read_loose(data, picks), picks, args.image_bytes
                )
            else:
                reads["tar shards (read_member)"] = timed_reads(
                    layout, lambda: read_shards(shard_index, picks), picks, args.image_bytes
                )
            remove(work / layout)
        for row_group in (64, 1000):
            path = work / f"images-rg{row_group}.parquet"
            write_parquet(path, images, args.image_bytes, row_group)
            name = f"parquet, row groups of {row_group}"
            reads[name] = timed_reads(name, lambda path=path: read_parquet(path, picks), picks, args.image_bytes)
            path.unlink()
        progress("reads done")
    return table(args, images, times, stats, reads, empty, (load_start, os.getloadavg()[0]))


def parser() -> argparse.ArgumentParser:
    """The command line (docs' commands are checked against it: tests/test_docs_commands.py)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=int, nargs="+", default=[20000], help="image counts, one table each (default 20000)"
    )
    parser.add_argument(
        "--image-bytes", type=int, default=16384, help="bytes per image (default 16384, incompressible)"
    )
    parser.add_argument("--shard-images", type=int, default=1000, help="images per tar shard (default 1000)")
    parser.add_argument("--reads", type=int, default=1000, help="random images read back per method (default 1000)")
    parser.add_argument(
        "--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS), help="layouts to time (default both)"
    )
    parser.add_argument(
        "--cache-type", default=None, help="DVC cache.type for both repos, e.g. hardlink (default: DVC's)"
    )
    parser.add_argument(
        "--tmp", type=Path, default=None, help="parent of the work directory (default: the system's temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = (command_line := parser()).parse_args(argv)
    if min(args.images) < 1 or args.image_bytes < 1 or args.shard_images < 1 or args.reads < 1:
        command_line.error("--images, --image-bytes, --shard-images and --reads must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # kill (SIGTERM) unwinds like Ctrl-C: sshd is stopped and the work directory deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for images in args.images:
        work = Path(tempfile.mkdtemp(prefix=f"shards-bench-{images}-", dir=args.tmp))
        try:
            print(bench(args, images, work), flush=True)
            print(flush=True)
        finally:
            if args.keep:
                progress(f"kept {work}")
            else:
                remove(work)


if __name__ == "__main__":
    main()
