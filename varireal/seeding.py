"""Per-item seeds: every random draw is keyed by what it is for, never by process state."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def item_seed(*parts: object) -> int:
    """A 63-bit seed derived from the parts' text (e.g. base seed, image id, slot)."""
    key = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def item_rng(*parts: object) -> np.random.Generator:
    """A NumPy generator seeded for one item."""
    return np.random.default_rng(item_seed(*parts))


def item_generator(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator seeded for one item, on the device the draw happens on."""
    return torch.Generator(device=device).manual_seed(item_seed(*parts))
