"""The paper's claims as tests against the margin (varireal.study.claims, stats.mean_test / needed_for)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from varireal.settings.study import StudySettings
from varireal.study.claims import (
    CONTRADICTED,
    NO_RUN,
    OPEN,
    SUPPORTED,
    claim_table,
    claim_verdicts,
    contrast,
    paper_claims,
)
from varireal.study.runs import Run
from varireal.study.stats import holm, mean_test, needed_for

SETTINGS = StudySettings()  # margin 0.3 points, level 0.05, power 0.8


def run_with(correct: np.ndarray, name: str = "run") -> Run:
    predictions = pd.DataFrame({"id": [f"i{k}" for k in range(len(correct))], "label": 0, "correct": correct})
    return Run(name=name, rev="0" * 40, params={}, predictions=predictions)


def cells_of(table: dict[tuple[str, str, str], list[np.ndarray]]) -> dict:
    """{cell key: {seed: Run}} from per-seed correctness arrays."""
    return {key: {seed: run_with(correct) for seed, correct in enumerate(seeds)} for key, seeds in table.items()}


def wrong_at(images: int, where: list[int]) -> np.ndarray:
    """Every test image right but those in `where`."""
    correct = np.ones(images, bool)
    correct[where] = False
    return correct


FEASIBLE = ("background", "synthetic_real", "feasible")
INFEASIBLE = ("background", "synthetic_real", "infeasible")
BASELINE = ("-", "real_only", "-")


def feasibility_row(cells: dict) -> pd.Series:
    table = claim_table(cells, SETTINGS)
    return table.set_index("row").loc["background / synthetic + real: feasible \u2212 infeasible"]


def test_the_t_test_is_scipys_one_sample_t_test_on_the_seed_averaged_images():
    rng = np.random.default_rng(3)
    per_seed = 100 * (rng.random((3, 200)) < 0.6).astype(float) - 100 * (rng.random((3, 200)) < 0.55)
    test = mean_test(per_seed)
    per_image = per_seed.mean(axis=0)
    for bound in (-0.3, 0.3, 5.0):
        above = scipy_stats.ttest_1samp(per_image, bound, alternative="greater")
        below = scipy_stats.ttest_1samp(per_image, bound, alternative="less")
        assert test.p_above(bound) == pytest.approx(above.pvalue)
        assert test.p_below(bound) == pytest.approx(below.pvalue)
    interval = scipy_stats.ttest_1samp(per_image, 0).confidence_interval(0.9)
    assert test.interval(0.05) == pytest.approx((interval.low, interval.high))


def test_identical_predictions_are_not_a_zero_width_interval():
    # every image equal: one discordant (seed, image) pair is assumed, as for the MDE
    test = mean_test(np.zeros((2, 50)))
    assert test.se == pytest.approx(100 / 2 / 50)
    low, high = test.interval(0.05)
    assert low < 0 < high


def test_a_difference_well_inside_the_margin_on_many_images_supports_equivalence():
    images = 20_000
    # feasible right where infeasible is wrong on 5 images, the reverse on 4: 0.005 points apart
    cells = cells_of(
        {FEASIBLE: [wrong_at(images, [0, 1, 2, 3, 4])] * 2, INFEASIBLE: [wrong_at(images, [5, 6, 7, 8])] * 2}
    )
    row = feasibility_row(cells)
    assert row["difference"] == pytest.approx(100 * (4 - 5) / images)
    assert -0.3 < row["low"] < row["high"] < 0.3 and row["p_support_holm"] < 0.05
    assert row["verdict"] == SUPPORTED and row["decide"] == ""


def test_a_difference_beyond_the_margin_contradicts_equivalence():
    images = 400
    cells = cells_of({FEASIBLE: [wrong_at(images, list(range(40)))], INFEASIBLE: [np.ones(images, bool)]})
    row = feasibility_row(cells)
    assert row["difference"] == pytest.approx(-10.0) and row["high"] < -0.3
    assert row["verdict"] == CONTRADICTED


def test_a_small_noisy_test_set_decides_nothing_and_says_how_many_images_would():
    rng = np.random.default_rng(0)
    images = 40
    a, b = rng.random(images) < 0.6, rng.random(images) < 0.6
    cells = cells_of({FEASIBLE: [a], INFEASIBLE: [b]})
    row = feasibility_row(cells)
    assert row["verdict"] == OPEN and row["seeds"] == 1
    # one seed: only images can be suggested, and more than the split has
    needed = int(row["decide"].split("about ")[1].split(" test images")[0].replace(",", ""))
    assert needed > images and "(this test split has 40)" in row["decide"]
    values = 100 * (a.astype(float) - b)[None, :]
    distance = abs(0.3 - abs(values.mean()))
    assert needed == needed_for(values, distance, SETTINGS.level, SETTINGS.power, 20)["images"]


def test_seeds_are_suggested_when_the_seeds_disagree_more_than_the_images_do():
    # an image's value: its own small effect plus large seed-to-seed noise, which more seeds average out
    rng = np.random.default_rng(2)
    images, seeds = 2000, 3
    per_seed = rng.normal(1.0, 0.5, images)[None, :] + rng.normal(0.0, 50.0, (seeds, images))
    needed = needed_for(per_seed, distance=1.0, level=0.05, power=0.8, max_seeds=40)
    assert set(needed) == {"seeds"} and seeds < needed["seeds"] <= 40
    within = per_seed.var(axis=0, ddof=1).mean()
    between = max(per_seed.mean(axis=0).var(ddof=1) - within / seeds, 0.0)
    z = scipy_stats.norm.ppf(0.95) + scipy_stats.norm.ppf(0.8)
    enough = lambda s: (between + within / s) / images <= (1.0 / z) ** 2  # noqa: E731
    assert enough(needed["seeds"]) and not enough(needed["seeds"] - 1)  # the fewest that do
    # the images' own spread, identical in every seed: seeds cannot help, images are suggested
    spread = np.tile(rng.normal(0.0, 50.0, images), (seeds, 1))
    assert set(needed_for(spread, 1.0, 0.05, 0.8, 40)) == {"images"}
    assert needed_for(spread, 0.0, 0.05, 0.8, 40) == {}  # on the margin: nothing decides it


def test_background_beats_real_only_is_a_one_sided_test_above_the_margin():
    images = 1000
    real_only = [wrong_at(images, list(range(300)))] * 2  # 70 %
    better = [wrong_at(images, list(range(200)))] * 2  # 80 %: 10 points better
    same = real_only
    cells = cells_of({BASELINE: real_only, FEASIBLE: better, INFEASIBLE: same})
    table = claim_table(cells, SETTINGS).set_index("row")
    feasible = table.loc["background / synthetic + real / feasible \u2212 real only"]
    infeasible = table.loc["background / synthetic + real / infeasible \u2212 real only"]
    assert feasible["difference"] == pytest.approx(10.0) and feasible["verdict"] == SUPPORTED
    # identical to the baseline: the gain is shown below the margin, which contradicts "beats"
    assert infeasible["difference"] == 0 and infeasible["verdict"] == CONTRADICTED
    verdicts = claim_verdicts(claim_table(cells, SETTINGS), SETTINGS.margin).set_index("claim")
    assert verdicts.loc["background", "verdict"] == CONTRADICTED  # one row against is enough
    assert (verdicts.loc["background", SUPPORTED], verdicts.loc["background", CONTRADICTED]) == (1, 1)


def test_holm_runs_over_the_rows_of_each_claim():
    rng = np.random.default_rng(1)
    keys = [(attr, "synthetic_real", feas) for attr in ("background", "color") for feas in ("feasible", "infeasible")]
    cells = cells_of({key: [rng.random(300) < 0.7 for _ in range(2)] for key in keys})
    table = claim_table(cells, SETTINGS)
    rows = table[(table["claim"] == "feasibility") & (table["seeds"] > 0)]
    assert len(rows) == 2
    assert rows["p_support_holm"].to_numpy() == pytest.approx(holm(rows["p_support"].to_numpy()))
    assert rows["p_contradict_holm"].to_numpy() == pytest.approx(holm(rows["p_contradict"].to_numpy()))


def test_texture_most_compares_the_sizes_of_the_feasibility_gaps():
    images = 500
    texture_feasible = np.ones(images, bool)
    texture_infeasible = wrong_at(images, list(range(50)))  # gap +10 points
    background_feasible = wrong_at(images, list(range(10)))
    background_infeasible = np.ones(images, bool)  # gap -2 points: its size is 2
    cells = cells_of(
        {
            ("texture", "synthetic_real", "feasible"): [texture_feasible],
            ("texture", "synthetic_real", "infeasible"): [texture_infeasible],
            ("background", "synthetic_real", "feasible"): [background_feasible],
            ("background", "synthetic_real", "infeasible"): [background_infeasible],
        }
    )
    claim = next(claim for claim in paper_claims() if claim.key == "texture")
    row = next(
        row for row in claim.rows if row.label == "synthetic + real: size of texture's gap \u2212 size of background's"
    )
    seeds, values = contrast(row, cells)
    assert seeds == [0] and values.mean() == pytest.approx(10.0 - 2.0)
    table = claim_table(cells, SETTINGS).set_index("row")
    assert table.loc[row.label, "verdict"] == SUPPORTED
    color = table.loc["synthetic + real: size of texture's gap \u2212 size of color's"]
    assert color["verdict"] == NO_RUN and color["decide"].startswith(
        "needs runs of color / synthetic + real / feasible"
    )


def test_a_claim_is_supported_only_when_every_row_is():
    images = 20_000
    identical = [np.ones(images, bool)] * 2
    cells = cells_of({FEASIBLE: identical, INFEASIBLE: identical})
    verdicts = claim_verdicts(claim_table(cells, SETTINGS), 0.3).set_index("claim")
    feasibility = verdicts.loc["feasibility"]
    assert (feasibility[SUPPORTED], feasibility[NO_RUN]) == (1, 5) and feasibility["verdict"] == OPEN
    assert feasibility["says"].endswith("within \u00b10.3 points")
    assert verdicts.loc["mixed", "verdict"] == NO_RUN


def test_margin_and_level_come_from_the_settings():
    images = 2000
    cells = cells_of({FEASIBLE: [wrong_at(images, list(range(20)))], INFEASIBLE: [np.ones(images, bool)]})
    assert feasibility_row(cells)["verdict"] == CONTRADICTED  # -1 point: beyond 0.3
    wide = claim_table(cells, StudySettings(margin=2.0)).set_index("row").iloc[0]
    assert wide["verdict"] == SUPPORTED  # within 2 points
    strict = claim_table(cells, StudySettings(margin=2.0, level=1e-6)).set_index("row").iloc[0]
    assert strict["verdict"] == OPEN and strict["high"] - strict["low"] > wide["high"] - wide["low"]


def test_margin_level_and_power_are_read_from_the_study_section(tmp_path):
    from varireal.study.collect import study_settings
    from varireal.study.runs import StudyError

    params = tmp_path / "params.yaml"
    params.write_text("profile: tiny\n")
    assert study_settings(params) == StudySettings()  # no section: the defaults
    (tmp_path / "method.yaml").write_text("study: {margin: 0.5}\n")
    assert study_settings(params).margin == 0.5  # beside it, as params are split
    params.write_text("profile: tiny\nstudy: {margin: 1.0, level: 0.01, power: 0.9}\n")
    assert study_settings(params) == StudySettings(margin=1.0, level=0.01, power=0.9)
    params.write_text("study: {margin: -1}\n")
    with pytest.raises(StudyError, match=r"params\.yaml: study\.margin: Input should be greater than 0 \(got -1\)"):
        study_settings(params)
    params.write_text("study: {margins: 1}\n")
    with pytest.raises(StudyError, match=r"study\.margins: Extra inputs are not permitted"):
        study_settings(params)
