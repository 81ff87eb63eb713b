"""`varireal plan`: the cost of a run before it starts, from params, manifests, lock and rates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from varireal.cost_plan import accepted_edit_costs, candidates_per_slot, render
from varireal.params import ParamsError
from varireal.settings.whole import load_all_params

REPO = Path(__file__).resolve().parents[1]


def varireal_plan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "varireal.cli", "plan", "--params", str(REPO / "params.yaml"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_the_paper_plan_for_pets_before_anything_is_fetched(tmp_path):
    result = varireal_plan("-S", "profile=paper", "-S", "dataset=oxford_pets", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "protocol=paper" in out and "real training images: 2,944 (official split sizes" in out
    # 2,944 images x 5 slots = 14,720 slots per set, x 3 candidates at most, x 1.39 expected (early stop at 0.7), 6 sets
    assert "background-feasible           14,720        44,160        20,461" in out
    assert "total                         88,320       264,960       122,765" in out
    assert "expected at acceptance 0.70: 122,765 (1.39 per slot)" in out
    assert "the reference at acceptance 0.70: 1.39 candidates per slot" in out
    assert "vlm" in out and "llava-hf/llava-v1.6-mistral-7b-hf@52320fb5 not in the lock or cache yet" in out
    assert "no edit rates in benchmarks/rates/paper.json; ESTIMATE" in out  # nobody has benchmarked the GPU yet


def test_the_fetched_manifest_and_a_rates_file_give_hours_and_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "data/real/demo"
    real.mkdir(parents=True)
    pd.DataFrame({"split": ["train"] * 10 + ["val"] * 3 + ["test"] * 4}).to_csv(real / "manifest.csv", index=False)
    rates = tmp_path / "rates.json"
    rates.write_text(
        json.dumps(
            {
                "seconds_per_candidate": {"background": 1.8, "color": 3.6, "texture": 7.2},
                "bytes_per_candidate": 500_000,
                "device": "test",
                "batch_size": 4,
                "measured": "today",
            }
        )
    )
    out = render(load_all_params(REPO / "params.yaml"), rates)
    # tiny: 10 images x 2 slots x 2 candidates = 40 per set at most; every slot gets both with early stop off
    assert "real training images: 10 (data/real/demo/manifest.csv (train split))" in out
    assert "edit background       0.03 device-hours" in out  # early stop: 2 sets x 20 slots x 1.3 x 1.8 s
    assert "disk for the edit sets: 78.0 MB expected, 0.12 GB at most" in out  # 156 and 240 candidates x 0.5 MB
    out = render(load_all_params(REPO / "params.yaml", ["edit.early_stop=false"]), rates)
    assert "every slot gets all 2 (edit.early_stop is off): 240" in out
    assert "edit background       0.04 device-hours" in out  # 80 x 1.8 s
    assert "edit texture          0.16 device-hours" in out  # 80 x 7.2 s
    assert "total                 0.28 device-hours (masks, the judge and training are not in the rates file)" in out
    assert "on edit.processes=1: 0.28 hours per machine" in out
    ranks = load_all_params(
        REPO / "params.yaml", ["edit.processes=4", "edit.tiny.shard_images=4", "edit.early_stop=false"]
    )
    # 10 images in shards of 4: 3 shards per set, so the 4th process has none
    assert (
        "on edit.processes=4: 0.09 hours per machine (VARIREAL_NODES machines divide it further); "
        "only 3 shards per set: 1 of the processes idle" in render(ranks, rates)
    )
    rates.write_text(json.dumps({**json.loads(rates.read_text()), "judge_seconds_per_candidate": 0.9}))
    judged = render(load_all_params(REPO / "params.yaml", ["edit.early_stop=false"]), rates)
    assert "judge                 0.06 device-hours" in judged  # 240 x 0.9 s
    assert "total                 0.34 device-hours (masks and training are not in the rates file)" in judged


def test_a_protocol_changes_the_planned_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing fetched here
    params = load_all_params(REPO / "params.yaml", ["profile=paper", "dataset=fgvc_aircraft"])
    assert "real training images: 6,667" in render(params)
    held_out = load_all_params(
        REPO / "params.yaml", ["profile=paper", "dataset=fgvc_aircraft", "protocol.paper=heldout_val"]
    )
    assert "real training images: 3,334" in render(held_out)
    final = load_all_params(REPO / "params.yaml", ["profile=paper", "dataset=fgvc_aircraft", "protocol.paper=final"])
    assert "real training images: 6,667" in render(final)  # the paper's images, the final checkpoint


def test_cost_per_accepted_edit_ours_early_stop_and_the_reference():
    cost = accepted_edit_costs(2.0, 5.0, acceptance=0.7, candidates=3)
    passed = 1 - 0.3**3  # a slot yields an edit when one of its 3 candidates passes
    assert cost["ours"] == pytest.approx(2.0 * 3 / passed)
    assert cost["early_stop"] == pytest.approx(2.0 * 1.39 / passed)
    assert cost["reference"] == pytest.approx(5.0 * 1.39)  # it keeps every slot, passing or not


def test_reference_retries_and_bad_overrides():
    assert candidates_per_slot(0.7, 3) == pytest.approx(1 + 0.3 + 0.09)
    assert candidates_per_slot(1.0, 3) == 1
    with pytest.raises(ParamsError, match="-S edit.paper.batchsize=2: edit.paper.batchsize is not a key"):
        load_all_params(REPO / "params.yaml", ["edit.paper.batchsize=2"])
    with pytest.raises(ParamsError, match="dataset = 'imagenet'"):
        load_all_params(REPO / "params.yaml", ["dataset=imagenet"])


def test_slots_the_value_lists_cannot_fill_are_a_warning_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/prompts here: the lists' sizes are prompts.paper's bounds (18-50)
    reference = ["profile=paper", "dataset=oxford_pets"]
    # the reference's draw (5 positions, repeats allowed) fills any slot count from any non-empty list
    assert "warning" not in render(
        load_all_params(REPO / "params.yaml", [*reference, "edit.paper.images_per_real=100000"])
    )
    paper = [
        *reference,
        "prompts.value_draw=distinct_values",
    ]  # ours: each slot of a real image a different value
    out = render(load_all_params(REPO / "params.yaml", [*paper, "edit.paper.images_per_real=100000"]))
    assert "total                   1,766,400,000" in out  # the slots are still counted as asked
    assert (
        "warning: edit.paper.images_per_real=100000, but every value list holds at most prompts.paper.max_values=50 "
        "values (data/prompts/oxford_pets.json is not built yet"
    ) in out
    assert "raise prompts.paper.min_values (and max_values) to at least 100000" in out
    maybe = render(load_all_params(REPO / "params.yaml", [*paper, "edit.paper.images_per_real=20"]))
    assert (
        "warning: edit.paper.images_per_real=20, but a value list may hold as few as prompts.paper.min_values=18"
        in maybe
    )
    assert "warning" not in render(load_all_params(REPO / "params.yaml", paper))  # 5 slots, at least 18 values


def test_a_built_prompts_document_names_the_lists_too_short_for_the_slots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = lambda n: [{"value": f"value {i}", "description": "one"} for i in range(n)]  # noqa: E731
    lists = {
        "background": {"feasible": values(4), "infeasible": values(4)},
        "texture": {"feasible": values(4), "infeasible": values(3)},
        "color": {
            "cat": {"feasible": values(2), "infeasible": values(4)},
            "rocket": {"feasible": values(4), "infeasible": values(4)},
        },
    }
    document = tmp_path / "data/prompts/demo.json"
    document.parent.mkdir(parents=True)
    document.write_text(
        json.dumps(
            {
                "format_version": 1,
                "dataset": "demo",
                "source": "curated",
                "curated_file": "demo.yaml",
                "llm": None,
                "lists": lists,
                "attempts": [],
            }
        )
    )
    distinct = ["prompts.value_draw=distinct_values"]
    assert "warning" not in render(
        load_all_params(REPO / "params.yaml", distinct)
    )  # tiny: 2 slots, every list has more
    out = render(load_all_params(REPO / "params.yaml", [*distinct, "edit.tiny.images_per_real=4"]))
    assert (
        "warning: edit.tiny.images_per_real=4, but 2 of the 8 value lists in data/prompts/demo.json hold fewer values "
        "(color/cat/feasible has 2, texture/infeasible has 3)"
    ) in out
    assert "rebuild the lists with at least 4 values each (prompts.tiny.min_values)" in out


def _hours(out: str, what: str) -> float:
    line = next(line for line in out.splitlines() if line.strip().startswith(what))
    return float(re.search(r"\d+\.\d+", line).group())


def test_without_a_rates_file_the_plan_estimates_from_published_figures_and_follows_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no benchmarks/rates/paper.json here
    cars = ["profile=paper", "dataset=stanford_cars"]
    out = render(load_all_params(REPO / "params.yaml", cars))
    assert "ESTIMATE" in out and "3.31 s for 30 steps at 1024 px" in out and "the judge's rate is assumed" in out
    assert "synthetic_real     78,720 steps      8.00 hours" in out  # the reference's own 8 h per Cars fine-tune
    smaller = render(
        load_all_params(REPO / "params.yaml", [*cars, "edit.paper.datasets.stanford_cars.background.scene.size=512"])
    )
    assert _hours(smaller, "edit background") < _hours(out, "edit background")  # a 512 px scene costs a quarter
    assert _hours(smaller, "edit color") == _hours(out, "edit color")
    probabilities = render(
        load_all_params(REPO / "params.yaml", [*cars, "filter.paper.answer_from=yes_no_probability"])
    )
    assert _hours(probabilities, "judge") < _hours(out, "judge")  # no generated reply to wait for
    pets = render(load_all_params(REPO / "params.yaml", ["profile=paper", "dataset=oxford_pets"]))
    assert "synthetic_real     28,460 steps" in pets


def test_a_measured_training_rate_replaces_the_estimate_of_fine_tune_hours(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rates = tmp_path / "paper.json"
    rates.write_text(json.dumps({"train_seconds_per_step": {"64": 0.5}}))  # what benchmarks.finetune --rates-out writes
    out = render(load_all_params(REPO / "params.yaml", ["profile=paper", "dataset=stanford_cars"]), rates)
    assert "fine-tuning (measured (rates file), 0.500 s per step of batch 64)" in out
    assert "synthetic_real     78,720 steps     10.93 hours" in out  # 78,720 x 0.5 s
    assert "ESTIMATE" in out  # no edit rates measured yet: those are still estimated
