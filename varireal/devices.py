"""Which device a stage process uses: `resolve_device`, and the GPU it claims when `device: auto` sees several.

DVC schedules no GPUs: `dvc queue start -j 4` runs four experiments at once and, left alone,
every one of them would pick cuda:0. Each process therefore claims a GPU for its lifetime with
an exclusive `flock` on `<VARIREAL_CACHE>/gpu-locks/<machine>-<index>.lock`, trying the
visible GPUs in order: concurrent experiments on one machine land on different GPUs, and the
kernel drops a lock the moment its process ends, killed or not, so nothing goes stale. With
every GPU claimed the process shares one (chosen by its pid) rather than wait. A launcher that
assigns devices itself (torchrun, accelerate: LOCAL_RANK) or CUDA_VISIBLE_DEVICES wins.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO, Literal

Device = Literal["auto", "cpu", "cuda"]  # what params accept; resolve_device also takes cuda:N and mps

_claimed: tuple[int, IO] | None = None  # the held lock file: it must stay open for the process


def lock_dir() -> Path:
    return Path(os.environ.get("VARIREAL_CACHE", Path.home() / ".cache" / "varireal")) / "gpu-locks"


def claim_gpu(count: int, folder: Path | None = None) -> int:
    """The index of a GPU among `count` visible ones that no other process of this machine holds."""
    global _claimed
    if "LOCAL_RANK" in os.environ:  # one process per device, placed by the launcher
        return int(os.environ["LOCAL_RANK"]) % count
    if _claimed is not None:
        return _claimed[0]
    folder = folder or lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        handle = open(folder / f"{socket.gethostname()}-{index}.lock", "a")  # noqa: SIM115 (held until exit)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _claimed = (index, handle)
        return index
    shared = os.getpid() % count
    print(f"devices: all {count} GPUs are claimed by other processes; sharing cuda:{shared}")
    return shared


def resolve_device(device: str = "auto") -> str:
    """'auto' -> a GPU when one is visible (a free one of several: claim_gpu), else 'cpu'.

    'cuda' without a GPU is an error.
    """
    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        count = torch.cuda.device_count()
        return "cuda" if count == 1 else f"cuda:{claim_gpu(count)}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA GPU is visible; use 'cpu' or 'auto'")
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per rank of this machine
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r}: use 'auto', 'cpu' or 'cuda[:N]'")
    return device
