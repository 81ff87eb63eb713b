"""The same bytes on differently configured machines: every stage pins ATen's, oneDNN's and MKL's instruction
set and the thread count before torch loads (varireal.cpu_pins), so a CPU whose defaults differ (AVX-512 or
plain kernels, 1 or 4 threads) computes what the committed dvc.lock holds.

Each run is a new process, as a stage is: the pins act only before torch loads. What it computes is what the
edit and train stages are made of (convolution, group norm, attention, linear layers, a long sum), in float32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from varireal.cpu_pins import CPU_PINS, SWITCH

WORK = """
import hashlib, json
import stages  # the pins, as `python -m stages.<name>` sets them
import torch
import torch.nn.functional as F

generator = torch.Generator().manual_seed(0)
x = torch.randn(2, 32, 48, 48, generator=generator)
conv = torch.randn(64, 32, 3, 3, generator=generator) / 17
h = F.silu(F.group_norm(F.conv2d(x, conv, padding=1), 8))
tokens = h.flatten(2).transpose(1, 2)  # (2, 2304, 64)
q, k, v = (tokens @ (torch.randn(64, 64, generator=generator) / 8) for _ in range(3))
out = F.scaled_dot_product_attention(q, k, v) @ torch.randn(64, 512, generator=generator)
out = torch.cat([out.flatten(), out.sum(dim=1).flatten(), out.logsumexp(dim=-1).flatten()])
print(json.dumps({
    "capability": torch.backends.cpu.get_cpu_capability(),
    "threads": torch.get_num_threads(),
    "sha256": hashlib.sha256(out.numpy().tobytes()).hexdigest(),
}))
"""
# Two machines' defaults: a big AVX-512 one whose shell asks for one thread, and one without vector kernels on 4.
MACHINES = {
    "avx512, 1 thread": {"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "no vector kernels, 4 threads": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "4"},
}


def run(machine: dict[str, str], pins: str) -> dict:
    env = {**{k: v for k, v in os.environ.items() if k not in CPU_PINS}, **machine, SWITCH: pins}
    done = subprocess.run([sys.executable, "-c", WORK], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the pins name x86-64 instruction sets")
def test_two_differently_configured_machines_compute_the_same_bytes():
    pinned = {name: run(machine, "on") for name, machine in MACHINES.items()}
    assert all(result["capability"] == "AVX2" and result["threads"] == 2 for result in pinned.values()), pinned
    assert len({result["sha256"] for result in pinned.values()}) == 1, pinned
    # and the pins are what makes them agree: left to their defaults the two machines differ
    free = {name: run(machine, "off") for name, machine in MACHINES.items()}
    assert free["avx512, 1 thread"]["threads"] == 1
    assert len({result["sha256"] for result in free.values()}) == 2, free
