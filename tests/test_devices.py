"""Concurrent experiments on one machine claim different GPUs (DVC's queue schedules none)."""

from __future__ import annotations

import subprocess
import sys
import time

CLAIM = """
import sys, time
from pathlib import Path
from varireal.devices import claim_gpu
print(claim_gpu(int(sys.argv[1]), Path(sys.argv[2])), flush=True)
time.sleep(float(sys.argv[3]))
"""


def test_each_process_claims_a_free_gpu_and_a_finished_one_frees_it(tmp_path):
    folder = tmp_path / "locks"
    procs = []
    try:
        for _ in range(3):
            proc = subprocess.Popen(
                [sys.executable, "-c", CLAIM, "4", str(folder), "30"], stdout=subprocess.PIPE, text=True
            )
            proc.index = int(proc.stdout.readline())
            procs.append(proc)
        assert [p.index for p in procs] == [0, 1, 2]
        procs[1].kill()  # a killed experiment: the kernel drops its lock at once
        procs[1].wait()
        proc = subprocess.Popen([sys.executable, "-c", CLAIM, "4", str(folder), "0"], stdout=subprocess.PIPE, text=True)
        assert int(proc.stdout.readline()) == 1
        proc.wait()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_a_launcher_rank_wins_and_a_full_machine_shares(tmp_path, monkeypatch):
    import varireal.devices as devices

    monkeypatch.setenv("LOCAL_RANK", "3")
    assert devices.claim_gpu(4, tmp_path) == 3
    monkeypatch.delenv("LOCAL_RANK")
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM, "1", str(tmp_path), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert int(holder.stdout.readline()) == 0
        monkeypatch.setattr(devices, "_claimed", None)
        started = time.monotonic()
        assert devices.claim_gpu(1, tmp_path) == 0  # the only GPU is held: shared, without waiting
        assert time.monotonic() - started < 5
        assert devices._claimed is None
    finally:
        holder.kill()
        holder.wait()
