"""Stage `masks`: one object mask per real training image (detector box -> SAM 2)."""

from pathlib import Path

from stages import run_stage
from varireal.devices import resolve_device
from varireal.io import read_table, write_json
from varireal.launch import Ranks, stage_ranks
from varireal.masks import MaskJob, MaskSettings, build_masks, detector_text
from varireal.models.load import load_detector, load_segmenter
from varireal.models.lock import read_lock
from varireal.params import MasksParams, Params, load_params
from varireal.safe_paths import check_real_manifest


def main() -> None:
    params = load_params()
    settings = params.masks.pick(params.profile)
    with stage_ranks(settings.processes, "stages.masks", []) as group:
        write_masks(params, settings, group)


def write_masks(params: Params, settings: MasksParams, group: Ranks) -> None:
    real_dir = Path("data/real") / params.dataset
    train = check_real_manifest(read_table(real_dir / "manifest.csv"), real_dir / "manifest.csv").query(
        "split == 'train'"
    )
    prefix = params.dataset_params().prefix
    jobs = [
        MaskJob(
            row.id, real_dir / row.path, row.class_name, detector_text(settings.text_template, prefix, row.class_name)
        )
        for row in train.itertuples()
    ]
    lock = read_lock(Path("data/models/lock.json"))
    device = resolve_device(settings.device)
    detector = load_detector(lock.path("detector"), device)
    segmenter = load_segmenter(lock.path("segmenter"), device)
    manifest = build_masks(
        jobs,
        Path("data/masks") / params.dataset,
        detector,
        segmenter,
        MaskSettings(
            settings.work_size, settings.box_threshold, settings.text_threshold, settings.batch_size, settings.box
        ),
        models_key=lock.fingerprint("detector", "segmenter"),
        ranks=group,
    )
    if manifest is None:  # another rank writes the manifest and the report
        return
    counts = manifest["status"].value_counts()
    write_json(
        Path("reports/masks.json"),
        {
            "images": len(manifest),
            **{
                f"{status}_fraction": round(counts.get(status, 0) / max(len(manifest), 1), 4)
                for status in ("detected", "fallback", "unreadable")
            },
            "mean_area_fraction": round(float(manifest["area_fraction"].dropna().mean()), 4)
            if manifest["area_fraction"].notna().any()
            else 0.0,
        },
    )
    print(f"masks: {counts.to_dict()}")


if __name__ == "__main__":
    run_stage(main)
