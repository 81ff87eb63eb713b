"""`varireal plan`: what `dvc repro` will generate at these params, and its cost, before it runs.

    varireal plan -S profile=paper -S dataset=oxford_pets

Quick and offline: it reads params.yaml, the fetched manifest if there is one, the lock, the
Hugging Face cache and a rates file, and loads no model.
- real images: data/real/<dataset>/manifest.csv's train split when fetched, else the dataset's
  official split sizes under the chosen protocol (the demo's from its params);
- slots and candidates per synthetic set (3 attributes x 2 feasibilities) from edit.<profile>: at
  most, and expected at an assumed acceptance when early stop is on; a warning when the value lists
  (data/prompts/<dataset>.json when built, else prompts.<profile>'s bounds) cannot fill the slots;
- models: each role's bytes from the lock when it is this profile's, else from the HF cache,
  else unknown until `dvc repro models` resolves it;
- disk and device-hours (of the expected candidates) from a rates file (seconds per candidate per method, bytes per
  candidate) that `python -m benchmarks.edit --rates-out FILE` measured; its path is printed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from varireal import estimate, workspace
from varireal.attributes.registry import ATTRIBUTE_METHODS
from varireal.list_fill import value_list_warnings
from varireal.run_time import Work, run_lines, stage_work
from varireal.settings.whole import Params
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES, PAPER_IMAGES, Protocol

# Train images of each dataset before it is fetched, per protocol (see docs/profiles.md).
# heldout_val on Cars holds round(0.2 n) of each class out, hence "about".
OFFICIAL_TRAIN_IMAGES: dict[str, dict[Protocol, int]] = {
    "oxford_pets": {"heldout_val": 2944, "paper": 2944, "final": 2944},
    "fgvc_aircraft": {"heldout_val": 3334, "paper": 6667, "final": 6667},
    "stanford_cars": {"heldout_val": 6515, "paper": 8144, "final": 8144},
}
OFFICIAL_TEST_IMAGES = {"oxford_pets": 3669, "fgvc_aircraft": 3333, "stanford_cars": 8041}
RATES_DIR = Path("benchmarks/rates")
REFERENCE_TRIES = 3  # the reference retries a rejected slot at most twice


@dataclass(frozen=True)
class RealImages:
    count: int
    source: str  # where the count comes from


@dataclass(frozen=True)
class SetPlan:
    """One synthetic set (an edit stage): its slots and candidates."""

    attr: str
    feas: str
    slots: int
    candidates: int  # at most: every slot gets all its candidates
    expected: float  # with early stop, at the assumed acceptance; else all of them


def _fetched(params: Params, real_root: Path, split: str) -> int | None:
    """Images of `split` in the fetched manifest; None before the fetch."""
    manifest = real_root / params.dataset / "manifest.csv"
    if not manifest.is_file():
        return None
    return int((pd.read_csv(manifest, usecols=["split"])["split"] == split).sum())


def real_images(params: Params, real_root: Path = workspace.REAL) -> RealImages:
    train = _fetched(params, real_root, "train")
    if train is not None:
        return RealImages(train, f"{real_root / params.dataset / 'manifest.csv'} (train split)")
    protocol = params.protocol.pick(params.profile)
    if params.dataset == "demo":
        demo = params.fetch.demo
        per_class = demo.train_per_class + (demo.val_per_class if protocol in PAPER_IMAGES else 0)
        return RealImages(per_class * len(demo.classes), "fetch.demo params (not fetched yet)")
    return RealImages(
        OFFICIAL_TRAIN_IMAGES[params.dataset][protocol], f"official split sizes, protocol {protocol} (not fetched yet)"
    )


def test_images(params: Params, real_root: Path = workspace.REAL) -> int:
    test = _fetched(params, real_root, "test")
    if test is not None:
        return test
    if params.dataset == "demo":
        return params.fetch.demo.test_per_class * len(params.fetch.demo.classes)
    return OFFICIAL_TEST_IMAGES[params.dataset]


def steps_per_data(params: Params, real: int) -> dict[str, int]:
    """Optimizer steps of a run on each kind of training data (train.data), every slot accepted, as the
    trainer counts them (varireal.finetune.batches.training_steps)."""
    from varireal.finetune.batches import training_steps

    settings = params.train.pick(params.profile, params.dataset)
    synthetic = real * params.edit.pick(params.profile).images_per_real
    sizes = {"synthetic_real": (real, synthetic), "synthetic_only": (0, synthetic), "real_only": (real, 0)}
    return {data: training_steps(settings, *rows) for data, rows in sizes.items()}


def pipeline_work(
    params: Params, candidates: dict[tuple[str, str], float], real_root: Path = workspace.REAL
) -> dict[str, Work]:
    """What each stage of `dvc repro` does at these params (varireal.run_time), given each set's candidates."""
    real = real_images(params, real_root).count
    steps = steps_per_data(params, real)[params.train.data]
    return stage_work(real, test_images(params, real_root), candidates, steps)


def set_plans(params: Params, images: int, acceptance: float) -> list[SetPlan]:
    edit = params.edit.pick(params.profile)
    slots = images * edit.images_per_real
    per_slot = (
        candidates_per_slot(acceptance, edit.candidates_per_slot) if edit.early_stop else edit.candidates_per_slot
    )
    return [
        SetPlan(a, f, slots, slots * edit.candidates_per_slot, slots * per_slot)
        for a in ATTRIBUTES
        for f in FEASIBILITIES
    ]


def model_sizes(params: Params, lock_path: Path = workspace.MODELS_LOCK) -> dict[str, tuple[int | None, str]]:
    """role -> (bytes or None, where the figure comes from)."""
    specs = params.models.for_profile(params.profile)
    if lock_path.is_file():
        lock = json.loads(lock_path.read_text())
        if lock.get("profile") == params.profile:
            return {role: (entry.get("bytes"), "lock") for role, entry in sorted(lock["roles"].items())}
    cached = _hub_cache_sizes()
    sizes: dict[str, tuple[int | None, str]] = {}
    for role, spec in sorted(specs.items()):
        if spec.source == "tiny":
            sizes[role] = (None, "built from its seed (a few MB)")
        elif (spec.repo_id, spec.revision) in cached:
            sizes[role] = (cached[spec.repo_id, spec.revision], "HF cache")
        else:
            sizes[role] = (None, f"unknown: {spec.repo_id}@{str(spec.revision)[:8]} not in the lock or cache yet")
    return sizes


def _hub_cache_sizes() -> dict[tuple[str, str], int]:
    from huggingface_hub import scan_cache_dir

    from varireal.models.hub import hub_cache

    if not Path(hub_cache()).is_dir():
        return {}
    found = {}
    for repo in scan_cache_dir(hub_cache()).repos:
        for revision in repo.revisions:
            found[repo.repo_id, revision.commit_hash] = revision.size_on_disk
    return found


def read_rates(params: Params, path: Path | None) -> tuple[dict | None, Path]:
    """The rates file given, or benchmarks/rates/<profile>.json; None when it does not exist."""
    path = path or RATES_DIR / f"{params.profile}.json"
    if not path.is_file():
        return None, path
    rates = json.loads(path.read_text())
    if "seconds_per_candidate" not in rates:  # only fine-tuning measured so far (benchmarks.finetune --rates-out)
        return rates, path
    missing = [a for a in ATTRIBUTES if a not in rates["seconds_per_candidate"]]
    if missing or "bytes_per_candidate" not in rates:
        raise ValueError(f"{path}: expected seconds_per_candidate for {', '.join(ATTRIBUTES)} and bytes_per_candidate")
    return rates, path


def candidates_per_slot(acceptance: float, tries: int) -> float:
    """Mean candidates per slot when a slot stops at its first pass, at most `tries` in all (early
    stop here; the reference's retries, which then accept the last try anyway)."""
    return sum((1 - acceptance) ** k for k in range(tries))


def accepted_edit_costs(
    seconds: float,
    reference_seconds: float,
    acceptance: float,
    candidates: int,
    judge: tuple[float, float] = (0.0, 0.0),
) -> dict[str, float]:
    """Device-seconds per accepted edit when each candidate passes the judge with probability `acceptance`.

    seconds / reference_seconds: to edit one candidate; judge: to judge one (ours at the filter's batch
    size, the reference's at batch 1), added to both, since every made candidate is judged once.

    ours: every slot gets all `candidates` (early_stop off); a slot yields an edit when one passes (1 - (1-a)^K).
    early stop: a slot stops at its first passing candidate (expected sum_k (1-a)^k candidates).
    reference: batch 1 (+ CPU offload), retries up to REFERENCE_TRIES and then keeps the last candidate
    anyway: per delivered slot, passing or not.
    """
    passed = 1.0 - (1.0 - acceptance) ** candidates
    ours, theirs = seconds + judge[0], reference_seconds + judge[1]
    return {
        "ours": ours * candidates / passed,
        "early_stop": ours * candidates_per_slot(acceptance, candidates) / passed,
        "reference": theirs * candidates_per_slot(acceptance, REFERENCE_TRIES),
    }


def render(params: Params, rates_path: Path | None = None, acceptance: float = 0.7) -> str:
    images = real_images(params)
    plans = set_plans(params, images.count, acceptance)
    rates, rates_file = read_rates(params, rates_path)
    warnings = [f"warning: {warning}" for warning in value_list_warnings(params)]
    lines = [
        f"plan: profile={params.profile} dataset={params.dataset} protocol={params.protocol.pick(params.profile)}",
        f"real training images: {images.count:,} ({images.source})",
        *_candidate_lines(params, plans, acceptance),
        "",
        *warnings,
        *([""] if warnings else []),
        *_model_lines(params),
        "",
        *_cost_lines(params, plans, rates, rates_file, images.count),
        "",
        *run_lines(
            pipeline_work(params, {(p.attr, p.feas): p.expected for p in plans}),
            rates or {},
            str(rates_file),
            params.profile,
        ),
    ]
    return "\n".join(lines)


def _candidate_lines(params: Params, plans: list[SetPlan], acceptance: float) -> list[str]:
    edit = params.edit.pick(params.profile)
    candidates, expected = sum(p.candidates for p in plans), sum(p.expected for p in plans)
    if edit.early_stop:
        how = (
            f"early stop: a slot stops at its first passing candidate; expected at acceptance {acceptance:.2f}: "
            f"{expected:,.0f} ({candidates_per_slot(acceptance, edit.candidates_per_slot):.2f} per slot)"
        )
    else:
        how = f"every slot gets all {edit.candidates_per_slot} (edit.early_stop is off): {candidates:,}"
    return [
        f"per set: {edit.images_per_real} slots per image x {edit.candidates_per_slot} candidates per slot at most; "
        f"{len(plans)} sets (attribute x feasibility)",
        "",
        f"{'set':<24}{'slots':>12}{'at most':>14}{'expected':>14}",
        *[f"{p.attr + '-' + p.feas:<24}{p.slots:>12,}{p.candidates:>14,}{p.expected:>14,.0f}" for p in plans],
        f"{'total':<24}{sum(p.slots for p in plans):>12,}{candidates:>14,}{expected:>14,.0f}",
        "",
        f"candidates generated: {how}; the filter keeps at most one per slot, none in a slot where none passes",
        f"the reference at acceptance {acceptance:.2f}: {candidates_per_slot(acceptance, REFERENCE_TRIES):.2f} "
        "candidates per slot (it accepts its last try even when that fails)",
    ]


def _model_lines(params: Params) -> list[str]:
    sizes = model_sizes(params)
    known = [size for size, _ in sizes.values() if size]
    return [
        "models:",
        *[f"  {role:<12}{_gb(size):>10}  {where}" for role, (size, where) in sizes.items()],
        f"  {'total':<12}{_gb(sum(known)):>10}  ({len(known)} of {len(sizes)} roles known)",
    ]


def _cost_lines(params: Params, plans: list[SetPlan], rates: dict | None, rates_file: Path, real: int) -> list[str]:
    if rates is None or "seconds_per_candidate" not in rates:
        return [*_estimated_lines(params, plans, rates_file, real), *_train_lines(params, rates, real)]
    lines = [
        f"rates: {rates_file} ({rates.get('device', '?')}, batch {rates.get('batch_size', '?')}, {rates.get('measured', '?')})"
    ]
    hours = {
        a: sum(p.expected for p in plans if p.attr == a) * rates["seconds_per_candidate"][a] / 3600 for a in ATTRIBUTES
    }
    lines += [f"  edit {attr:<11}{value:>10.2f} device-hours" for attr, value in hours.items()]
    if "judge_seconds_per_candidate" in rates:  # every made candidate is judged once (in edit under early stop)
        hours["judge"] = sum(p.expected for p in plans) * rates["judge_seconds_per_candidate"] / 3600
        lines.append(f"  judge           {hours['judge']:>10.2f} device-hours")
    left_out = "masks and training" if "judge" in hours else "masks, the judge and training"
    lines.append(f"  total           {sum(hours.values()):>10.2f} device-hours ({left_out} are not in the rates file)")
    lines.append(_wall_clock(params, sum(hours.values()), real))
    lines.append(
        f"disk for the edit sets: {_gb(sum(p.expected for p in plans) * rates['bytes_per_candidate'])} expected, "
        f"{_gb(sum(p.candidates for p in plans) * rates['bytes_per_candidate'])} at most"
    )
    return [*lines, *_train_lines(params, rates, real)]


def _estimated_lines(params: Params, plans: list[SetPlan], rates_file: Path, real: int) -> list[str]:
    """Device-hours of the expected candidates from published figures (varireal.estimate), per method
    with each set's resolved settings, until a rates file measured on the target GPU exists."""
    edit, judge = params.edit.pick(params.profile), params.filter.pick(params.profile)
    hours = dict.fromkeys(ATTRIBUTES, 0.0)
    for plan in plans:
        method = edit.method(params.dataset, plan.attr, plan.feas)
        hours[plan.attr] += (
            plan.expected * estimate.edit_seconds(ATTRIBUTE_METHODS[plan.attr], method, edit.work_size) / 3600
        )
    hours["judge"] = (
        sum(p.expected for p in plans) * estimate.judge_seconds(judge.answer_from, judge.max_new_tokens) / 3600
    )
    return [
        f"rates: no edit rates in {rates_file}; ESTIMATE, {estimate.SOURCE} "
        f"(measure: `python -m benchmarks.edit --rates-out {rates_file}` on the target machine)",
        *[
            f"  edit {attr:<11}{value:>10.2f} device-hours (estimate)"
            for attr, value in hours.items()
            if attr != "judge"
        ],
        f"  judge           {hours['judge']:>10.2f} device-hours (estimate, {judge.answer_from})",
        f"  total           {sum(hours.values()):>10.2f} device-hours (estimate; masks and training not included)",
        _wall_clock(params, sum(hours.values()), real),
    ]


def _train_lines(params: Params, rates: dict | None, real: int) -> list[str]:
    """Fine-tune hours from the run length the trainer computes (steps_per_data)."""
    settings = params.train.pick(params.profile, params.dataset)
    measured = (
        (rates or {}).get("train_seconds_per_step", {}).get(str(settings.batch_size))
    )  # benchmarks.finetune --rates-out
    per_step = measured or estimate.REFERENCE_TRAIN_SECONDS_PER_STEP
    source = "measured (rates file)" if measured else "estimate: the reference's 8 h per Cars fine-tune of 78,720 steps"
    steps = steps_per_data(params, real)
    hours = {data: count * per_step / 3600 for data, count in steps.items()}
    grid = 9 * (hours["synthetic_real"] + hours["synthetic_only"]) + hours["real_only"]
    return [
        f"fine-tuning ({source}, {per_step:.3f} s per step of batch {settings.batch_size}):",
        *[f"  {data:<15}{steps[data]:>10,} steps {hours[data]:>9.2f} hours" for data in steps],
        f"  the study grid, one seed (3 attributes x 3 feasibilities x 2 data + real only = 19 runs): {grid:.1f} GPU-hours",
    ]


def _wall_clock(params: Params, device_hours: float, real: int) -> str:
    """Hours per machine on edit.processes ranks; ranks take whole shards, so more ranks
    than a set's shards wait idle."""
    edit = params.edit.pick(params.profile)
    shards = max(1, math.ceil(real / edit.shard_images))
    busy = min(edit.processes, shards)
    idle = (
        f"; only {shards} shards per set: {edit.processes - shards} of the processes idle"
        if edit.processes > shards
        else ""
    )
    return (
        f"  on edit.processes={edit.processes}: {device_hours / busy:.2f} hours per machine "
        f"(VARIREAL_NODES machines divide it further){idle}"
    )


def _gb(size: float | None) -> str:
    if not size:
        return "?"
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
