"""Which images train the classifier, and how they are batched: varireal.finetune.data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from varireal.finetune.augment import eval_transform, train_transform
from varireal.finetune.batches import (
    PerKindSampler,
    PoolSampler,
    step_sampler,
    train_loader,
    training_steps,
)
from varireal.finetune.data import ImageRows, SelectionError, select_training_rows
from varireal.images import png_bytes
from varireal.io import read_table, write_table
from varireal.settings.train import AugmentParams, LoraParams, MachineParams
from varireal.shards import Sample, write_shard

CLASSES = ["cat", "coffee cup", "rocket"]
COLORS = [(220, 60, 40), (40, 200, 60), (50, 70, 230)]
REAL_PER_SPLIT = {"train": 4, "val": 2, "test": 2}
CANDIDATES = 6  # synthetic candidates per class and feasibility; every third one is rejected
# accepted counts per class: feasible 4 each; infeasible 4, 4 and only 2 for the rocket
INFEASIBLE_REJECTED = {"rocket": {0, 1, 2, 5}}


def _image(color: tuple[int, int, int], seed: int, size: tuple[int, int] = (40, 36)) -> Image.Image:
    """A class-coloured square on noise: learnable by a tiny CLIP in a few steps."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, (size[1], size[0], 3)).astype(np.uint8)
    pixels[8:28, 10:30] = color
    return Image.fromarray(pixels)


def make_study(root: Path) -> tuple[Path, dict[str, Path]]:
    """data/real/<dataset> and data/synthetic/<attr>/<feas> in the layouts the stages write."""
    real_dir = root / "real"
    rows = []
    for index, name in enumerate(CLASSES):
        for split, count in REAL_PER_SPLIT.items():
            for n in range(count):
                image_id = f"{name.replace(' ', '_')}_{split}_{n}"
                path = f"{split}/{index}/{image_id}.png"
                (real_dir / path).parent.mkdir(parents=True, exist_ok=True)
                _image(COLORS[index], 100 * index + 10 * list(REAL_PER_SPLIT).index(split) + n).save(real_dir / path)
                rows.append(
                    {
                        "id": image_id,
                        "path": path,
                        "class_name": name,
                        "class_index": index,
                        "split": split,
                        "source": "fixture",
                    }
                )
    write_table(real_dir / "manifest.csv", pd.DataFrame(rows))
    write_table(real_dir / "classes.csv", pd.DataFrame({"class_index": range(len(CLASSES)), "class_name": CLASSES}))
    sets = {feas: _synthetic_set(root / "synthetic" / "background" / feas, feas) for feas in ("feasible", "infeasible")}
    return real_dir, sets


def _synthetic_image(class_index: int, n: int) -> Image.Image:
    return _image(COLORS[class_index], 500 + n + 10 * class_index)


def _synthetic_set(set_dir: Path, feas: str) -> Path:
    """As the filter writes it: accepted edits only in shards/synthetic-NNNNN.tar (one per class here), and
    manifest.parquet with every candidate, `shard`/`offset`/`size` where an accepted image lies."""
    rows = []
    for index, name in enumerate(CLASSES):
        rejected = INFEASIBLE_REJECTED.get(name, {2, 5}) if feas == "infeasible" else {2, 5}
        candidates = [
            {
                "edit_id": f"{name.replace(' ', '_')}-{feas}-{n}",
                "source_id": f"{name}_train_{n % 4}",
                "class_name": name,
                "class_index": index,
                "attribute": "background",
                "feasibility": feas,
                "value": f"value {n}",
                "seed": n,
                "slot": n,
                "candidate": 0,
                "score": 0.75,
                "accepted": n not in rejected,
            }
            for n in range(CANDIDATES)
        ]
        shard = f"shards/synthetic-{index:05d}.tar"
        kept = [
            Sample(row["edit_id"], png_bytes(_synthetic_image(index, n)), row)
            for n, row in enumerate(candidates)
            if row["accepted"]
        ]
        where = {entry.key: entry for entry in write_shard(set_dir / shard, kept)}
        for row in candidates:
            entry = where.get(row["edit_id"])
            rows.append(
                {
                    **row,
                    "shard": shard if entry else None,
                    "offset": entry.offset if entry else -1,
                    "size": entry.size if entry else -1,
                }
            )
    write_table(set_dir / "manifest.parquet", pd.DataFrame(rows))
    return set_dir


@pytest.fixture()
def study(tmp_path) -> tuple[Path, dict[str, Path]]:
    return make_study(tmp_path)


def select(study, feas="feasible", data="synthetic_real", images_per_class=None, real_shots=None, seed=0):
    real_dir, sets = study
    return select_training_rows(
        real_dir, sets, feas, data=data, images_per_class=images_per_class, real_shots=real_shots, seed=seed
    )


def _per_class(rows: pd.DataFrame, **match) -> dict[str, int]:
    for column, value in match.items():
        rows = rows[rows[column] == value]
    return rows.groupby("class_name").size().to_dict()


# --- selection --------------------------------------------------------------------------------


def test_modes_select_the_right_kinds_and_only_real_train_images(study):
    real_only = select(study, data="real_only")
    synthetic_only = select(study, data="synthetic_only")
    both = select(study, data="synthetic_real")
    assert set(real_only["kind"]) == {"real"} and len(real_only) == 3 * REAL_PER_SPLIT["train"]
    assert all("/train/" in f for f in real_only["file"])
    assert set(synthetic_only["kind"]) == {"synthetic"} and set(synthetic_only["feasibility"]) == {"feasible"}
    assert len(synthetic_only) == 3 * 4
    assert len(both) == len(real_only) + len(synthetic_only)
    assert set(both["kind"]) == {"real", "synthetic"}


def test_only_accepted_edits_are_selected(study):
    _, sets = study
    manifest = read_table(sets["infeasible"] / "manifest.parquet")
    accepted = set(manifest.loc[manifest["accepted"], "edit_id"])
    chosen = select(study, feas="infeasible", data="synthetic_only")
    assert set(chosen["id"]) == accepted
    assert _per_class(chosen) == {"cat": 4, "coffee cup": 4, "rocket": 2}


def test_kind_comes_from_the_manifest_not_the_path(study, tmp_path):
    """A synthetic set stored under a folder named 'real' is still synthetic."""
    real_dir, sets = study
    moved = tmp_path / "real" / "train" / "feasible"
    sets["feasible"].rename(moved)
    rows = select_training_rows(
        real_dir, {"feasible": moved}, "feasible", data="synthetic_real", images_per_class=None, real_shots=None, seed=0
    )
    assert rows.loc[rows["file"].str.startswith(str(moved)), "kind"].eq("synthetic").all()
    assert (rows["kind"] == "synthetic").sum() == 12


def test_mixed_is_half_feasible_half_infeasible_per_class(study):
    mixed = select(study, feas="mixed", data="synthetic_only")
    feasible = _per_class(mixed, feasibility="feasible")
    infeasible = _per_class(mixed, feasibility="infeasible")
    # as many images per class as one set gives (the smaller count), half of each; rocket: only 2 infeasible accepted
    assert feasible == infeasible == {"cat": 2, "coffee cup": 2, "rocket": 1}
    capped = select(study, feas="mixed", data="synthetic_only", images_per_class=3)
    assert (
        _per_class(capped, feasibility="feasible")
        == _per_class(capped, feasibility="infeasible")
        == {"cat": 1, "coffee cup": 1, "rocket": 1}
    )
    # a larger cap keeps every image of a smaller one
    assert set(capped["id"]) <= set(select(study, feas="mixed", data="synthetic_only", images_per_class=6)["id"])


def test_mixed_selection_is_stable_and_ignores_manifest_row_order(study):
    first = select(study, feas="mixed", data="synthetic_only", images_per_class=2, seed=3)
    _, sets = study
    for set_dir in sets.values():  # the same manifests, rows shuffled
        manifest = read_table(set_dir / "manifest.parquet")
        write_table(set_dir / "manifest.parquet", manifest.sample(frac=1, random_state=1))
    again = select(study, feas="mixed", data="synthetic_only", images_per_class=2, seed=3)
    pd.testing.assert_frame_equal(first, again)
    picks = {
        tuple(select(study, feas="mixed", data="synthetic_only", images_per_class=2, seed=s)["id"]) for s in range(6)
    }
    assert len(picks) > 1  # the seed decides which edits are taken


def test_images_per_class_and_real_shots_are_deterministic(study):
    rows = select(study, images_per_class=2, real_shots=1, seed=7)
    assert _per_class(rows, kind="synthetic") == {name: 2 for name in CLASSES}
    assert _per_class(rows, kind="real") == {name: 1 for name in CLASSES}
    pd.testing.assert_frame_equal(rows, select(study, images_per_class=2, real_shots=1, seed=7))
    more = select(study, images_per_class=3, real_shots=3, seed=7)
    assert set(rows["id"]) <= set(more["id"])
    shots = {tuple(select(study, data="real_only", real_shots=1, seed=s)["id"]) for s in range(6)}
    assert len(shots) > 1


def test_a_set_without_accepted_images_is_an_error_naming_its_manifest(study):
    _, sets = study
    manifest = read_table(sets["infeasible"] / "manifest.parquet").assign(accepted=False)
    write_table(sets["infeasible"] / "manifest.parquet", manifest)
    with pytest.raises(SelectionError, match=str(sets["infeasible"] / "manifest.parquet")):
        select(study, feas="mixed")
    with pytest.raises(SelectionError, match="infeasible"):
        select(study, feas="infeasible", data="synthetic_only")
    assert len(select(study, feas="infeasible", data="real_only")) == 12  # real-only does not read it


def test_a_missing_manifest_and_a_wrong_class_are_named(study, tmp_path):
    real_dir, sets = study
    with pytest.raises(SelectionError, match="manifest not found"):
        select_training_rows(
            real_dir,
            {"feasible": tmp_path / "nowhere"},
            "feasible",
            data="synthetic_only",
            images_per_class=None,
            real_shots=None,
            seed=0,
        )
    manifest = read_table(sets["feasible"] / "manifest.parquet")
    manifest.loc[0, "class_index"] = 2
    write_table(sets["feasible"] / "manifest.parquet", manifest)
    with pytest.raises(SelectionError, match="not in classes.csv"):
        select(study)


def test_a_synthetic_manifest_of_the_old_layout_or_without_shard_columns_is_named(study):
    path = study[1]["feasible"] / "manifest.parquet"
    manifest = read_table(path)
    write_table(path, manifest.drop(columns=["offset", "size"]))
    with pytest.raises(SelectionError, match=re.escape(f"{path}: missing column(s) offset, size")):
        select(study)
    path.unlink()
    write_table(path.with_suffix(".csv"), manifest.drop(columns=["shard", "offset", "size"]))  # the old layout
    with pytest.raises(SelectionError, match=re.escape(f"{path}: manifest not found")):
        select(study)


def test_a_synthetic_row_reads_its_own_image_from_the_shard_by_offset(study):
    rows = select(study, feas="infeasible", data="synthetic_only")
    assert set(rows["file"].map(lambda f: Path(f).name)) == {f"synthetic-0000{i}.tar" for i in range(3)}
    assert (rows["offset"] > 0).all() and (rows["size"] > 0).all()
    dataset = ImageRows(rows, eval_transform(16, (0.5,) * 3, (0.5,) * 3))
    for index, row in enumerate(rows.itertuples()):
        n = int(row.id.rsplit("-", 1)[1])
        assert np.array_equal(np.asarray(dataset.read(index)), np.asarray(_synthetic_image(row.class_index, n)))
    pixels, label, is_real = dataset[0]
    assert pixels.shape == (3, 16, 16) and label == rows["class_index"].iloc[0] and not is_real
    shifted = rows.assign(
        offset=rows["offset"] + 1
    )  # a wrong byte range is an error naming the shard, not another image
    with pytest.raises(ValueError, match=re.escape(rows["file"].iloc[0])):
        ImageRows(shifted, eval_transform(16, (0.5,) * 3, (0.5,) * 3)).read(0)


def test_the_training_benchmark_writes_a_study_the_selection_reads(tmp_path):
    from benchmarks.finetune import CLASSES as BENCH_CLASSES
    from benchmarks.finetune import toy_study

    real_dir, set_dir = toy_study(tmp_path, per_class=2, image_side=24)
    assert sorted(p.name for p in set_dir.iterdir()) == ["manifest.parquet", "shards"]
    rows = select_training_rows(
        real_dir,
        {"feasible": set_dir},
        "feasible",
        data="synthetic_real",
        images_per_class=None,
        real_shots=None,
        seed=0,
    )
    assert _per_class(rows, kind="synthetic") == {name: 4 for name in BENCH_CLASSES}  # 2 images x 2 slots
    dataset = ImageRows(rows, eval_transform(16, (0.5,) * 3, (0.5,) * 3))
    synthetic = [i for i, real in enumerate(dataset.is_real) if not real]
    assert all(dataset.read(i).size == (32, 24) for i in synthetic)


# --- batches ----------------------------------------------------------------------------------


def test_per_kind_sampler_pairs_each_main_batch_with_a_cycled_batch():
    is_real = [True] * 3 + [False] * 7
    sampler = PerKindSampler(is_real, batch_size=4, seed=0, epochs=2)
    assert len(sampler) == 2 * 2  # ceil(7 synthetic / 4) steps per epoch
    batches = list(sampler)
    for epoch in range(2):
        main = [i for b in batches[2 * epoch : 2 * epoch + 2] for i, _ in b if not is_real[i]]
        assert sorted(main) == list(range(3, 10))  # one epoch = each synthetic image once
    for batch in batches:
        real = [i for i, _ in batch if is_real[i]]
        assert len(real) == 4 and set(real) <= {0, 1, 2}
    assert batches == list(PerKindSampler(is_real, batch_size=4, seed=0, epochs=2))
    assert batches != list(PerKindSampler(is_real, batch_size=4, seed=1, epochs=2))
    one_kind = list(PerKindSampler([False] * 5, batch_size=2, seed=0, epochs=1))
    assert [len(b) for b in one_kind] == [2, 2, 1]  # nothing to cycle: one kind only, last batch partial
    assert len(PerKindSampler(is_real, batch_size=4, seed=0, epochs=2, steps=5)) == 5  # steps win over epochs


def test_a_pool_pass_holds_each_synthetic_row_once_and_each_real_row_real_repeats_times():
    is_real = [True] * 3 + [False] * 7
    sampler = PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2, epochs=2)
    assert sampler.steps_per_pass == 4 and len(sampler) == 8  # ceil((7 + 3 x 2) / 4) steps per pass
    batches = list(sampler)
    assert [len(b) for b in batches] == [4, 4, 4, 1] * 2  # the pass's last batch is partial (drop_last=False)
    for pass_, part in enumerate((batches[:4], batches[4:])):
        keys = [key for batch in part for key in batch]
        counts = pd.Series([index for index, _ in keys]).value_counts().to_dict()
        assert counts == {**{i: 2 for i in range(3)}, **{i: 1 for i in range(3, 10)}}
        assert len(set(keys)) == len(keys)  # two copies of a real row never draw the same augmentation
        assert {draw for _, draw in keys} <= {2 * pass_, 2 * pass_ + 1}
    assert batches[:4] != [[(i, d - 2) for i, d in b] for b in batches[4:]]  # each pass its own permutation
    assert any(len({is_real[i] for i, _ in b}) == 2 for b in batches)  # one pool: the kinds mix within a batch
    assert batches == list(PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2, epochs=2))
    assert batches != list(PoolSampler(is_real, batch_size=4, seed=1, real_repeats=2, epochs=2))
    # real_only: the real rows once per pass, as the reference's real-only baseline reads them
    real_only = [key for batch in PoolSampler([True] * 5, batch_size=2, seed=0, real_repeats=5) for key in batch]
    assert sorted(real_only) == [(i, 0) for i in range(5)]


def test_a_steps_schedule_runs_on_across_passes_and_has_one_home():
    is_real = [True] * 3 + [False] * 7
    sampler = PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2, epochs=2, steps=6)
    batches = list(sampler)
    assert len(batches) == 6 and batches[:4] == list(PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2))
    assert {draw for _, draw in batches[4]} <= {2, 3}  # step 4 opens the second pass
    lora = LoraParams(rank=2, alpha=2, dropout=0.0, target_modules=("q_proj",), towers=("image",))
    pool = MachineParams(batch_size=4, real_repeats=2, epochs=2, lora=lora)
    assert training_steps(pool, real=3, synthetic=7) == len(step_sampler(is_real, pool, seed=9)) == 8
    assert training_steps(pool.model_copy(update={"steps": 78720}), real=3, synthetic=7) == 78720
    per_kind = pool.model_copy(update={"batches": "per_kind"})
    assert training_steps(per_kind, real=3, synthetic=7) == 2 * 2 and isinstance(
        step_sampler(is_real, per_kind, 0), PerKindSampler
    )
    for settings in (pool, per_kind):  # the count a plan makes without rows is the samplers' own, for every mix
        for real, synthetic in ((3, 7), (5, 0), (0, 9), (8, 2)):
            rows = [True] * real + [False] * synthetic
            assert training_steps(settings, real, synthetic) == len(step_sampler(rows, settings, seed=1)), (
                settings.batches,
                real,
                synthetic,
            )


def test_ddp_ranks_split_every_pooled_step_and_a_step_too_small_to_split_is_named():
    is_real = [True] * 3 + [False] * 7
    whole = list(PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2, epochs=2))
    parts = []
    for rank in range(2):
        sampler = PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2, steps=3)  # never reaches the 1-row batch
        sampler.part(rank, 2)
        parts.append(list(sampler))
    assert [sorted(a + b) for a, b in zip(*parts)] == [sorted(batch) for batch in whole[:3]]
    with pytest.raises(SelectionError, match="processes=2: the last step of a pass holds 1 image"):
        PoolSampler(is_real, batch_size=4, seed=0, real_repeats=2).part(0, 2)


def test_same_seed_gives_the_same_batches_whatever_the_worker_count(study):
    rows = select(study, images_per_class=2, real_shots=2)
    transform = train_transform(24, (0.5,) * 3, (0.5,) * 3, AugmentParams())
    dataset = ImageRows(rows, transform, seed=5, jpeg_quality=75)  # the paper's reading, in worker processes too

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = PerKindSampler(dataset.is_real, 3, seed=5)
        return [images for images, _, _ in train_loader(dataset, sampler, workers, seed=5)]

    single = batches(0)
    assert single[0].shape == (6, 3, 24, 24)
    assert all(torch.equal(a, b) for a, b in zip(single, batches(2)))
    other = ImageRows(rows, transform, seed=6, jpeg_quality=75)
    assert not torch.equal(other[(0, 0)][0], dataset[(0, 0)][0])  # augmentation follows the seed
    assert not torch.equal(dataset[(0, 1)][0], dataset[(0, 0)][0])  # and differs between passes


def test_eval_transform_and_decoded_cache(study):
    rows = select(study, data="real_only").head(2)
    dataset = ImageRows(rows, eval_transform(16, (0.5,) * 3, (0.5,) * 3), cache=True)
    pixels, label, is_real = dataset[0]
    assert pixels.shape == (3, 16, 16) and label == 0 and is_real
    Path(rows["file"].iloc[0]).unlink()  # decoded once: the cache serves it from now on
    assert torch.equal(dataset[0][0], pixels)
    with pytest.raises(ValueError, match="cannot decode"):
        ImageRows(rows, eval_transform(16, (0.5,) * 3, (0.5,) * 3))[0]
