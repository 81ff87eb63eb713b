"""Which GPU a stage process uses when `device: auto` sees several.

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
from typing import IO

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
