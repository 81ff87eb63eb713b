"""Several processes for one stage: the stage starts itself again under torchrun, and each rank
takes whole shards (or batches) of the work, so the bytes written never depend on the count.

`<section>.<profile>.processes` (masks, edit, filter, train; 1 by default) is read by the stage
before it loads a model. With P > 1 on one machine,

    python -m stages.edit color infeasible
becomes
    python -m torch.distributed.run --standalone --nproc-per-node P -m stages.edit color infeasible

and each rank picks its GPU from LOCAL_RANK (varireal.devices). Across machines, set
VARIREAL_NODES=N inside a SLURM allocation of N nodes and run `dvc repro` (or `dvc exp run`) on
one of them: the stage then runs

    srun --nodes N --ntasks-per-node 1 python -m torch.distributed.run --nnodes N \\
        --nproc-per-node P --rdzv-backend c10d --rdzv-endpoint <first node>:29500 -m stages.edit ...

so every node starts P ranks (N x P in all). The workspace (data/, params.yaml) must be on a
filesystem every node sees. Rank 0 writes what a stage writes once (manifests, reports,
dvclive, the adapter) after a barrier; the other ranks write only their own shards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# A rank that finished its shards waits at the final barrier for the slowest one; on a resumed
# run that can be hours (one rank had its shards done, another none).
BARRIER_TIMEOUT = timedelta(hours=48)
RDZV_PORT = 29500


class LaunchError(ValueError):
    """The process layout asked for cannot be started here; the message says what to set."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the stage's processes (rank 0 of 1 when not launched)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, count: int) -> list[int]:
        """This rank's share of `count` shards or batches: r, r + world, r + 2 world, ..."""
        return list(range(self.rank, count, self.world))

    def join(self) -> bool:
        """Wait until every rank is here; True on rank 0, which then writes what is written once."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return self.main

    def gather(self, value: Any) -> list[Any]:
        """`value` of every rank, in rank order (a collective: every rank calls it)."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def total(self, *values: float) -> tuple[float, ...]:
        """The sum over ranks of each value (a collective: every rank calls it)."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        summed = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(summed)
        return tuple(summed.tolist())

    def label(self, text: str) -> str:
        return text if self.world == 1 else f"{text} [rank {self.rank}/{self.world}]"


SINGLE = Ranks()


def launched(env: Mapping[str, str] = os.environ) -> bool:
    """True inside a torchrun (or accelerate) worker: it never starts another launcher."""
    return "LOCAL_RANK" in env and "WORLD_SIZE" in env


def launch_command(
    processes: int, module: str, args: Sequence[str], env: Mapping[str, str] = os.environ
) -> list[str] | None:
    """The command that runs `python -m module args` on `processes` ranks per node, or None: run as is."""
    if processes < 1:
        raise LaunchError(f"processes={processes}: must be at least 1")
    nodes = _nodes(env)
    if launched(env) or (processes == 1 and nodes == 1):
        return None
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes)]
    target = ["-m", module, *args]
    if nodes == 1:
        return [*torchrun, "--standalone", *target]
    if "SLURM_JOB_ID" not in env:
        raise LaunchError(
            f"VARIREAL_NODES={nodes} needs a SLURM allocation (srun starts the ranks on every node); "
            "elsewhere run `python -m torch.distributed.run --nnodes ...` on each machine yourself"
        )
    head = _first_node(env)
    rendezvous = [
        "--nnodes",
        str(nodes),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"{head}:{RDZV_PORT}",
        "--rdzv-id",
        env["SLURM_JOB_ID"],
    ]
    srun = [shutil.which("srun") or "srun", "--nodes", str(nodes), "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
    return [*srun, *torchrun, *rendezvous, *target]


def relaunch(processes: int, module: str, args: Sequence[str]) -> None:
    """Replace this process by the launcher when the stage runs on several processes; else return."""
    command = launch_command(processes, module, args)
    if command is None:
        return
    print(f"{module}: {processes} processes per node: {' '.join(command)}", flush=True)  # exec drops unflushed output
    os.execv(command[0], command)


@contextmanager
def stage_ranks(processes: int, module: str, args: Sequence[str]) -> Iterator[Ranks]:
    """What a stage's main runs in: relaunched under torchrun when processes > 1, then its process group."""
    relaunch(processes, module, args)
    with ranks() as group:
        yield group


@contextmanager
def ranks() -> Iterator[Ranks]:
    """The process group of a launched stage (gloo; NCCL too for CUDA tensors), or SINGLE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield SINGLE
        return
    import torch
    import torch.distributed as dist

    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def _nodes(env: Mapping[str, str]) -> int:
    text = env.get("VARIREAL_NODES", "1")
    if not text.isdigit() or int(text) < 1:
        raise LaunchError(f"VARIREAL_NODES={text!r}: expected a whole number of machines, at least 1")
    return int(text)


def _first_node(env: Mapping[str, str]) -> str:
    """The first host of the allocation (the rendezvous), as `scontrol show hostnames` expands it."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise LaunchError("SLURM_JOB_NODELIST is not set: cannot find the first node of the allocation")
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        first = nodelist.split(",")[0]
        if "[" in first:
            raise LaunchError(f"SLURM_JOB_NODELIST={nodelist!r}: a host range needs `scontrol` on PATH to expand")
        return first
    names = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return names.stdout.split()[0]
