"""The CPU's kernels, pinned before torch loads, so that the default run gives the committed dvc.lock's bytes on
any x86-64 machine, not only on one like the machine that made them.

PyTorch picks its vectorized kernels by the CPU's instruction set (AVX-512 where there is one, else AVX2),
oneDNN and MKL theirs, and every float sum split over threads adds in an order that depends on their count.
Measured on a fresh clone (AVX-512, 2 cores): the same `dvc repro` with ATen, oneDNN and MKL held to AVX2
gave other bytes for all six edit sets, the synthetic sets, the adapter and the galleries; with one thread
instead of two, the same. Only the masks and the model lock came out the same. So every stage, and the test
session, runs with the values below whatever the machine's defaults are (forced, not defaulted: a
colleague's shell setting OMP_NUM_THREADS must not change the bytes).

AVX2 is on every x86-64 server CPU since 2013-2015 (Intel Haswell, AMD Excavator/Zen); two threads are what
a CI runner has. On a GPU the CUDA kernels decide instead: docs/pipeline.md#the-same-bytes-anywhere says
which outputs vary between GPUs. VARIREAL_CPU_PINS=off leaves the machine's own choices (faster on a big
CPU; then the bytes are this machine's).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

CPU_PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's vectorized CPU kernels
    "DNNL_MAX_CPU_ISA": "AVX2",  # oneDNN's (convolutions, some matmuls)
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility: one code path on Intel and AMD alike
    "OMP_NUM_THREADS": "2",  # torch's intra-op threads: how a sum is split
    "MKL_NUM_THREADS": "2",
}
SWITCH = "VARIREAL_CPU_PINS"


def pin_cpu(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set CPU_PINS in `environ` (unless VARIREAL_CPU_PINS=off); they act only if torch has not loaded yet."""
    if environ.get(SWITCH, "on") != "off":
        environ.update(CPU_PINS)
