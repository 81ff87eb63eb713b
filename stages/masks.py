"""Stage `masks`: one object mask per real training image (detector box -> SAM 2)."""

from stages import run_stage
from varireal import workspace
from varireal.devices import resolve_device
from varireal.io import read_table, write_json
from varireal.launch import Ranks, stage_ranks
from varireal.mask_set import build_masks
from varireal.masks import MaskJob, MaskSettings, detector_text
from varireal.models.load import load_detector, load_segmenter
from varireal.models.lock import read_lock
from varireal.params import load_params
from varireal.safe_paths import check_real_manifest
from varireal.settings.masks import MasksParams, MasksStage


def main() -> None:
    params = load_params(MasksStage)
    settings = params.masks.pick(params.profile)
    with stage_ranks(settings.processes, "stages.masks", []) as group:
        write_masks(params, settings, group)


def write_masks(params: MasksStage, settings: MasksParams, group: Ranks) -> None:
    real_dir = workspace.real_dir(params.dataset)
    train = check_real_manifest(read_table(real_dir / "manifest.csv"), real_dir / "manifest.csv").query(
        "split == 'train'"
    )
    jobs = [
        MaskJob(
            row.id,
            real_dir / row.path,
            row.class_name,
            detector_text(settings.text_template, params.prefix, row.class_name),
        )
        for row in train.itertuples()
    ]
    lock = read_lock(workspace.MODELS_LOCK)
    device = resolve_device(settings.device)
    manifest = build_masks(
        jobs,
        workspace.masks_dir(params.dataset),
        load_detector(lock.path("detector"), device),
        load_segmenter(lock.path("segmenter"), device),
        MaskSettings(
            settings.work_size, settings.box_threshold, settings.text_threshold, settings.batch_size, settings.box
        ),
        models_key=lock.fingerprint("detector", "segmenter"),
        ranks=group,
    )
    if manifest is None:  # another rank writes the manifest and the report
        return
    counts = manifest["status"].value_counts()
    areas = manifest["area_fraction"].dropna()
    write_json(
        workspace.MASKS_REPORT,
        {
            "images": len(manifest),
            **{
                f"{status}_fraction": round(counts.get(status, 0) / max(len(manifest), 1), 4)
                for status in ("detected", "fallback", "unreadable")
            },
            "mean_area_fraction": round(float(areas.mean()), 4) if len(areas) else 0.0,
        },
    )
    print(f"masks: {counts.to_dict()}")


if __name__ == "__main__":
    run_stage(main)
