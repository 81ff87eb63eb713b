"""Paired statistics of the study (varireal.study.stats) against numbers worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from varireal.study.stats import (
    bootstrap_interval,
    discordant,
    holm,
    mcnemar_exact,
    mean_difference,
    minimum_detectable_effect,
    paired,
    seed_mean,
)

# Twelve test images, one seed. A right and B wrong on 4 images, B right and A wrong on 1,
# both right on 5, both wrong on 2.
A = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
B = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)


def test_difference_and_discordant_pairs_by_hand():
    # accuracy A = 9/12, B = 6/12: 25 points
    assert mean_difference(A, B) == pytest.approx(25.0)
    assert discordant(A, B) == (4, 1)


def test_exact_mcnemar_is_the_two_sided_binomial_on_the_discordant_pairs():
    # 4 of 5 discordant pairs favour A; Bin(5, 1/2): P(X <= 1) + P(X >= 4) = (1 + 5 + 5 + 1) / 32
    assert mcnemar_exact(4, 1) == pytest.approx(12 / 32)
    assert mcnemar_exact(1, 4) == pytest.approx(12 / 32)
    # 10 of 10: 2 / 1024
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    # no discordant pair: nothing tells the two apart
    assert mcnemar_exact(0, 0) == 1.0
    # 3 of 6 is the centre: p = 1
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)


def _exact_bootstrap_quantiles(per_image: np.ndarray, levels: tuple[float, float]) -> list[float]:
    """Quantiles of the mean of N draws with replacement, from the multinomial law (no sampling)."""
    values, counts = np.unique(per_image, return_counts=True)
    n = len(per_image)
    law: dict[float, float] = {}
    for draw in itertools.product(range(n + 1), repeat=len(values)):
        if sum(draw) != n:
            continue
        mean = round(float(np.dot(draw, values)) / n, 12)
        probability = math.factorial(n) * math.prod((c / n) ** k / math.factorial(k) for k, c in zip(draw, counts))
        law[mean] = law.get(mean, 0.0) + probability
    support = sorted(law)
    cdf = np.cumsum([law[v] for v in support])
    assert cdf[-1] == pytest.approx(1.0)
    out = []
    for level in levels:
        index = int(np.searchsorted(cdf, level))
        # the level is far from a jump of the CDF (> 5 Monte Carlo sd of 100,000 draws: 0.0005),
        # so a bootstrap of that many draws lands on this value
        assert min(abs(cdf[index] - level), abs(cdf[index - 1] - level) if index else 1.0) > 0.003
        out.append(100 * support[index])
    return out


def test_bootstrap_interval_matches_the_exact_bootstrap_law():
    low, high = bootstrap_interval(A, B, resamples=100_000, seed=0)
    expected_low, expected_high = _exact_bootstrap_quantiles(A.astype(float) - B, (0.025, 0.975))
    # per-image differences +1 x4, -1 x1, 0 x7: the mean of 12 draws lies on a grid of 1/12,
    # and the law's 2.5% and 97.5% points are -1/12 and 7/12
    assert (low, high) == pytest.approx((expected_low, expected_high))
    assert (expected_low, expected_high) == pytest.approx((-100 / 12, 700 / 12))
    assert low <= mean_difference(A, B) <= high


def test_bootstrap_is_seeded_and_resamples_images_across_seeds_together():
    rng = np.random.default_rng(0)
    a, b = rng.random(300) < 0.7, rng.random(300) < 0.6  # a finer grid, where seeds show
    assert bootstrap_interval(a, b, 500, seed=3) == bootstrap_interval(a, b, 500, seed=3)
    assert bootstrap_interval(a, b, 500, seed=3) != bootstrap_interval(a, b, 500, seed=4)
    # two seeds: per-image differences averaged over seeds first; seed 1 of B also gets
    # images 3 and 11 right, so image 3 gives (1 + 0) / 2 and image 11 (0 - 1) / 2
    a2 = np.stack([A, A])
    b2 = np.stack([B, B | np.isin(np.arange(12), [3, 11])])
    per_image = (a2.astype(float) - b2).mean(axis=0)
    assert per_image.tolist() == [1, 1, 1, 0.5, -1, 0, 0, 0, 0, 0, 0, -0.5]
    assert mean_difference(a2, b2) == pytest.approx(100 * (9 - 6 + 9 - 8) / 24)
    low, high = bootstrap_interval(a2, b2, resamples=100_000, seed=0)
    assert (low, high) == pytest.approx(_exact_bootstrap_quantiles(per_image, (0.025, 0.975)))
    assert (low, high) == pytest.approx((-100 / 6, 50.0))
    # McNemar over every (seed, image) pair: seed 0 (4, 1), seed 1 (3, 2)
    assert discordant(a2, b2) == (7, 3)


def test_paired_collects_every_number():
    result = paired(A, B, resamples=2_000, seed=1)
    assert (result.seeds, result.images, result.a_only, result.b_only) == (1, 12, 4, 1)
    assert result.difference == pytest.approx(25.0)
    assert result.p_value == pytest.approx(0.375)
    assert (result.low, result.high) == bootstrap_interval(A, B, 2_000, seed=1)
    assert result.mde == pytest.approx(minimum_detectable_effect(5 / 12, 12))


def test_minimum_detectable_effect_by_hand():
    # (z_0.975 + z_0.8) * sqrt(p_d / N) * 100 with z_0.975 = 1.959964, z_0.8 = 0.841621
    assert minimum_detectable_effect(5 / 12, 12) == pytest.approx(2.801585 * math.sqrt(5 / 144) * 100, rel=1e-6)
    # Stanford Cars' 8,041 test images, 10% discordant pairs: about 0.99 points
    assert minimum_detectable_effect(0.10, 8041) == pytest.approx(0.988, abs=0.001)
    # identical predictions: one discordant pair is assumed, not zero
    assert minimum_detectable_effect(0.0, 100) == minimum_detectable_effect(0.01, 100) > 0


def test_holm_on_a_known_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; NaN (a comparison without runs) stays out of the family: m = 2 here
    adjusted = holm([0.6, float("nan"), 0.2])
    assert adjusted[[0, 2]] == pytest.approx([0.6, 0.4]) and math.isnan(adjusted[1])
    assert holm([0.7, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).shape == (0,)


def test_seed_mean_with_a_t_interval_by_hand():
    # mean 62.5, sd 2.5, t_{0.975, 2} = 4.302653: half width 4.302653 * 2.5 / sqrt(3) = 6.2103
    result = seed_mean([60.0, 62.5, 65.0])
    assert (result.n, result.mean) == (3, 62.5)
    assert (result.low, result.high) == pytest.approx((62.5 - 6.2103, 62.5 + 6.2103), abs=1e-4)
    single = seed_mean([70.0])
    assert single.n == 1 and single.mean == 70.0 and math.isnan(single.low) and math.isnan(single.high)


def test_mismatched_tables_are_refused():
    with pytest.raises(ValueError, match=r"\(1, 12\) vs \(1, 11\)"):
        paired(A, B[:11])
    with pytest.raises(ValueError, match="no test image"):
        mean_difference(np.zeros((2, 0), bool), np.zeros((2, 0), bool))
