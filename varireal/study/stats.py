"""Paired statistics of two experiments scored on the same test images.

Everything here takes per-image correctness as a 0/1 array of shape (seeds, images): row s
is seed s, column i is test image i, in the same image order for both experiments, so that
`a[s, i]` and `b[s, i]` are one pair (seed s of A against seed s of B on image i).

Pooling over seeds. The test images are the random sample the study generalises from; the
seeds are a handful of training repeats. So the per-image difference is averaged over seeds
first, `d_i = mean_s (a[s, i] - b[s, i])`, and images are the unit that is resampled. The
mean difference is `100 * mean_i d_i` points (= mean over seeds of accuracy(A_s) - accuracy(B_s)).
McNemar's test counts the discordant pairs over every (seed, image) pair; with one seed it is
the textbook test, with several it treats the seeds' pairs as independent, which is optimistic
when seeds agree on which images are hard: read it beside the bootstrap interval, which
resamples whole images and keeps that dependence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP_CHUNK = 256  # resamples drawn at once: (chunk, images) indices in memory, not (B, images)


@dataclass(frozen=True)
class Paired:
    """A vs B on the same images and seeds; differences in points (accuracy x 100)."""

    seeds: int
    images: int
    difference: float  # 100 * (accuracy A - accuracy B), averaged over seeds
    low: float  # paired bootstrap 95% interval of the difference
    high: float
    a_only: int  # (seed, image) pairs A got right and B wrong
    b_only: int  # ... B right and A wrong
    p_value: float  # exact McNemar, two-sided
    mde: float  # smallest difference this test set detects at ALPHA, POWER (points)


@dataclass(frozen=True)
class SeedMean:
    """Mean of one number over seeds with a two-sided 95% t interval (NaN with one seed)."""

    n: int
    mean: float
    low: float
    high: float


def as_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both correctness tables as 2-D bool arrays of equal shape (a 1-D array is one seed)."""
    a, b = np.atleast_2d(np.asarray(a, dtype=bool)), np.atleast_2d(np.asarray(b, dtype=bool))
    if a.shape != b.shape:
        raise ValueError(f"paired tables differ in shape: {a.shape} vs {b.shape} (seeds, images)")
    if a.shape[1] == 0:
        raise ValueError("paired tables have no test image")
    return a, b


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """100 * (accuracy of A - accuracy of B), averaged over seeds."""
    a, b = as_pairs(a, b)
    return float(100 * (a.mean() - b.mean()))


def bootstrap_interval(
    a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean difference (points) over `resamples` resamplings of the images.

    Each resample draws `images` test images with replacement (numpy Generator seeded with
    `seed`) and takes the mean of the per-image differences averaged over seeds (`d_i` above).
    """
    a, b = as_pairs(a, b)
    per_image = (a.astype(np.float64) - b).mean(axis=0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        count = min(BOOTSTRAP_CHUNK, resamples - start)
        drawn = rng.integers(0, len(per_image), size=(count, len(per_image)))
        means[start : start + count] = per_image[drawn].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(100 * low), float(100 * high)


def discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(pairs only A got right, pairs only B got right), counted over every seed and image."""
    a, b = as_pairs(a, b)
    return int((a & ~b).sum()), int((~a & b).sum())


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value: two-sided binomial test of a_only successes in a_only + b_only at p = 1/2."""
    if a_only + b_only == 0:
        return 1.0
    return float(scipy_stats.binomtest(a_only, a_only + b_only, 0.5, alternative="two-sided").pvalue)


def minimum_detectable_effect(discordance: float, images: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest accuracy difference (points) a paired test on `images` images detects.

    Normal approximation of McNemar's test: a per-image difference is -1, 0 or +1, its variance
    under no effect is the discordance rate p_d (share of pairs where exactly one model is right),
    so MDE = (z_{1-alpha/2} + z_{power}) * sqrt(p_d / N) * 100, N = test images. With several
    seeds p_d is the rate over all (seed, image) pairs and N is still the number of images:
    seeds average out training noise but add no test images, so this is the conservative bound.
    At least one discordant pair is assumed (p_d >= 1/N): identical predictions detect nothing.
    """
    if images <= 0:
        raise ValueError("minimum_detectable_effect needs at least one test image")
    z = scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(power)
    return float(100 * z * np.sqrt(max(discordance, 1 / images) / images))


def paired(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> Paired:
    """Every paired number of A against B (see the module docstring for the pooling over seeds)."""
    a, b = as_pairs(a, b)
    low, high = bootstrap_interval(a, b, resamples, seed)
    a_only, b_only = discordant(a, b)
    return Paired(
        seeds=a.shape[0],
        images=a.shape[1],
        difference=mean_difference(a, b),
        low=low,
        high=high,
        a_only=a_only,
        b_only=b_only,
        p_value=mcnemar_exact(a_only, b_only),
        mde=minimum_detectable_effect((a_only + b_only) / a.size, a.shape[1]),
    )


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN, outside the family).

    Sorted ascending, the k-th smallest (k from 0) of m becomes max over j <= k of (m - j) * p_(j),
    capped at 1; the result is returned in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    family = np.flatnonzero(~np.isnan(p))
    order = family[np.argsort(p[family], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def seed_mean(values: list[float] | np.ndarray, level: float = 0.95) -> SeedMean:
    """Mean over seeds +- t_{n-1} * sd / sqrt(n) (sample sd, ddof = 1); no interval for one seed."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        raise ValueError("seed_mean needs at least one value")
    mean = float(values.mean())
    if n == 1:
        return SeedMean(1, mean, float("nan"), float("nan"))
    half = scipy_stats.t.ppf(1 - (1 - level) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return SeedMean(n, mean, float(mean - half), float(mean + half))


# --- tests against a margin (the paper's claims) ---------------------------------------------------


@dataclass(frozen=True)
class MeanTest:
    """A per-image contrast (points) over the test images: its mean, standard error and t degrees of freedom."""

    mean: float
    se: float
    df: int

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided 1 - 2 level t interval: its ends are the one-sided tests' bounds at `level`."""
        half = scipy_stats.t.ppf(1 - level, self.df) * self.se
        return self.mean - half, self.mean + half

    def p_above(self, bound: float) -> float:
        """One-sided p of H0: mean <= bound (small: the mean is above the bound)."""
        return float(scipy_stats.t.sf((self.mean - bound) / self.se, self.df))

    def p_below(self, bound: float) -> float:
        """One-sided p of H0: mean >= bound (small: the mean is below the bound)."""
        return float(scipy_stats.t.cdf((self.mean - bound) / self.se, self.df))


def mean_test(per_seed: np.ndarray) -> MeanTest:
    """The t test of a contrast given per (seed, image) in points: images are the sample, each image's
    value averaged over seeds first (as the bootstrap). Identical values on every image would give a
    zero standard error; as for the MDE, at least one discordant (seed, image) pair is assumed, so the
    error is never below that of one image differing by 100 / seeds points."""
    per_seed = np.atleast_2d(np.asarray(per_seed, dtype=np.float64))
    seeds, images = per_seed.shape
    if images < 2:
        raise ValueError(f"a t test needs at least two test images; got {images}")
    per_image = per_seed.mean(axis=0)
    floor = 100 / seeds / images  # one image at 100 / seeds, the rest equal: sd ~ (100 / seeds) / sqrt(N)
    se = max(float(per_image.std(ddof=1)) / np.sqrt(images), floor)
    return MeanTest(float(per_image.mean()), se, images - 1)


def needed_for(per_seed: np.ndarray, distance: float, level: float, power: float, max_seeds: int) -> dict[str, int]:
    """Seeds or test images that would show the mean to be `distance` points from a bound (one-sided at
    `level`, with `power`), if the observed spread holds: {"seeds": S} when more seeds (same images)
    suffice, else {"images": N} at the present seeds. Empty when `distance` is 0: nothing decides it.

    The variance of an image's seed-mean is between + within / S: `within`, the spread of one image's
    values across seeds, averages out with more seeds; `between`, the images' own spread, only with
    more images. With one seed the two cannot be told apart and only images are suggested.
    """
    per_seed = np.atleast_2d(np.asarray(per_seed, dtype=np.float64))
    seeds, images = per_seed.shape
    if distance <= 0:
        return {}
    z = scipy_stats.norm.ppf(1 - level) + scipy_stats.norm.ppf(power)
    target = (distance / z) ** 2  # the largest variance of the mean that decides it
    total = max(float(per_seed.mean(axis=0).var(ddof=1)), (100 / seeds) ** 2 / images)
    if seeds > 1:
        within = float(per_seed.var(axis=0, ddof=1).mean())
        between = max(total - within / seeds, 0.0)
        for more in range(seeds + 1, max_seeds + 1):
            if (between + within / more) / images <= target:
                return {"seeds": more}
    images_needed = int(np.ceil(total / target))
    if images_needed <= images:  # the spread already allows it: the t quantiles or Holm held it back
        return {"seeds": seeds + 1}
    return {"images": images_needed}
