"""Which rows each training step takes: the pool of the reference or one batch per kind.

What step s holds depends on s and the seed alone, so a resumed run and any number of DDP ranks
see the batches of one uninterrupted process; `training_steps` counts a run's steps without rows.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from varireal.finetune.data import ImageRows, SelectionError
from varireal.seeding import item_rng, item_seed
from varireal.settings.train import MachineParams


class StepSampler(ABC):
    """One batch of dataset keys `(index, draw)` per training step; `draw` seeds the image's augmentation.

    What step s holds depends on s and the seed alone (`batch`, in the subclasses), so a resumed
    run (`start`) and any number of DDP ranks (`part`) see the batches of one uninterrupted process.
    """

    def __init__(self, steps_per_pass: int, epochs: int, steps: int | None, seed: int) -> None:
        self.steps_per_pass, self.seed = steps_per_pass, seed
        self.total_steps = steps if steps is not None else epochs * steps_per_pass  # the one home of this count
        self.start = 0  # the first step iteration yields: a resumed run skips the steps it did
        self.rank, self.world = 0, 1  # this process's part of each batch (DDP)
        self._orders: dict[tuple[str, int], np.ndarray] = {}

    def part(self, rank: int, world: int) -> None:
        """Yield only images rank, rank + world, ... of each step; every part must hold one image."""
        # Only the last batch of a pass can be partial, and every pass cuts its batches alike.
        smallest = len(self.batch(min(self.total_steps, self.steps_per_pass) - 1))
        if world > smallest:
            raise SelectionError(
                f"processes={world}: the last step of a pass holds {smallest} image(s), fewer than the processes; "
                "use fewer processes or another batch_size"
            )
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.total_steps

    def _order(self, which: str, members: Sequence[int], pass_: int) -> np.ndarray:
        """`members` in the shuffled order of one pass, seeded by (seed, which, pass) (memoised per pass)."""
        if (which, pass_) not in self._orders:
            if len(self._orders) > 8:
                self._orders.clear()
            self._orders[which, pass_] = np.asarray(members)[
                item_rng(self.seed, "order", which, pass_).permutation(len(members))
            ]
        return self._orders[which, pass_]

    @abstractmethod
    def batch(self, step: int) -> list[tuple[int, int]]:
        """The keys of step `step` (each subclass composes its batches its own way)."""

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return (self.batch(step)[self.rank :: self.world] for step in range(self.start, len(self)))


def _kinds(is_real: Sequence[bool]) -> tuple[list[int], list[int]]:
    real = [i for i, flag in enumerate(is_real) if flag]
    synthetic = [i for i, flag in enumerate(is_real) if not flag]
    if not real and not synthetic:
        raise SelectionError("no training image selected")
    return real, synthetic


class PoolSampler(StepSampler):
    """`batches: pool`, the reference's (Finetune/classify/data.py:255-377, 714-719): one pool of every
    synthetic row once and every real row `real_repeats` times (once when no synthetic row trains, as
    its real-only baseline); each pass is a new seeded permutation of the pool, cut into batches of
    batch_size in order, the last one of a pass partial (drop_last=False). The r-th copy of a real
    row in pass p draws augmentation p * repeats + r, so no two copies look alike.
    """

    def __init__(
        self,
        is_real: Sequence[bool],
        batch_size: int,
        seed: int,
        *,
        real_repeats: int,
        epochs: int = 1,
        steps: int | None = None,
    ) -> None:
        real, synthetic = _kinds(is_real)
        self.repeats = real_repeats if real and synthetic else 1
        self.rows = np.asarray(synthetic + real * self.repeats, dtype=np.int64)
        self.copies = np.asarray([0] * len(synthetic) + [r for r in range(self.repeats) for _ in real], dtype=np.int64)
        self.batch_size = batch_size
        super().__init__(
            self.steps_per_pass_of(len(real), len(synthetic), batch_size, real_repeats), epochs, steps, seed
        )

    @staticmethod
    def steps_per_pass_of(real: int, synthetic: int, batch_size: int, real_repeats: int) -> int:
        return math.ceil((synthetic + real * (real_repeats if real and synthetic else 1)) / batch_size)

    def batch(self, step: int) -> list[tuple[int, int]]:
        pass_, within = divmod(step, self.steps_per_pass)
        entries = self._order("pool", range(len(self.rows)), pass_)[
            within * self.batch_size : (within + 1) * self.batch_size
        ]
        return [(int(self.rows[e]), pass_ * self.repeats + int(self.copies[e])) for e in entries]


class PerKindSampler(StepSampler):
    """`batches: per_kind` (our correction: a fixed 1:1 composition): every step takes batch_size rows
    of the larger kind (one pass = one epoch over it, reshuffled each epoch) and, when both kinds
    train, batch_size rows of the other kind, cycled through its own reshuffled passes.
    """

    def __init__(
        self, is_real: Sequence[bool], batch_size: int, seed: int, *, epochs: int = 1, steps: int | None = None
    ) -> None:
        real, synthetic = _kinds(is_real)
        # The larger kind sets the epoch; on a tie, synthetic (the data under study) does.
        self.main, self.cycled = (real, synthetic) if len(real) > len(synthetic) else (synthetic, real)
        self.batch_size = batch_size
        super().__init__(self.steps_per_pass_of(len(real), len(synthetic), batch_size), epochs, steps, seed)

    @staticmethod
    def steps_per_pass_of(real: int, synthetic: int, batch_size: int) -> int:
        return math.ceil(max(real, synthetic) / batch_size)

    def batch(self, step: int) -> list[tuple[int, int]]:
        epoch, within = divmod(step, self.steps_per_pass)
        main = self._order("main", self.main, epoch)[within * self.batch_size : (within + 1) * self.batch_size]
        keys = [(int(i), epoch) for i in main]
        for t in range(step * self.batch_size, (step + 1) * self.batch_size) if self.cycled else ():
            pass_, position = divmod(t, len(self.cycled))
            keys.append((int(self._order("cycled", self.cycled, pass_)[position]), pass_))
        return keys


def step_sampler(is_real: Sequence[bool], settings: MachineParams, seed: int) -> StepSampler:
    """The sampler of `settings.batches` over rows flagged real or synthetic."""
    if settings.batches == "pool":
        return PoolSampler(
            is_real,
            settings.batch_size,
            seed,
            real_repeats=settings.real_repeats,
            epochs=settings.epochs,
            steps=settings.steps,
        )
    return PerKindSampler(is_real, settings.batch_size, seed, epochs=settings.epochs, steps=settings.steps)


def training_steps(settings: MachineParams, real: int, synthetic: int) -> int:
    """Optimizer steps of a run on `real` + `synthetic` selected rows, counted as the samplers count them
    (without building one: a plan may ask about millions of rows)."""
    if settings.steps is not None:
        return settings.steps
    if settings.batches == "pool":
        per_pass = PoolSampler.steps_per_pass_of(real, synthetic, settings.batch_size, settings.real_repeats)
    else:
        per_pass = PerKindSampler.steps_per_pass_of(real, synthetic, settings.batch_size)
    return settings.epochs * per_pass


def train_loader(
    dataset: ImageRows, sampler: StepSampler, num_workers: int, seed: int, pin_memory: bool = False
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(item_seed(seed, "loader")),  # worker base seeds
        persistent_workers=False,
    )
