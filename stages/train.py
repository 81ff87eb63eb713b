"""Stage `train`: LoRA-CLIP on the selected real + synthetic images; the adapter the protocol chooses
(best test top-1 as the paper did, the final one, or the best on held-out val: varireal.finetune.kept)."""

from stages import run_stage
from varireal import workspace
from varireal.finetune.train import train
from varireal.launch import Ranks, stage_ranks
from varireal.models.lock import read_lock
from varireal.params import load_params
from varireal.settings.train import TrainParams, TrainStage
from varireal.vocabulary import FEASIBILITIES


def main() -> None:
    params = load_params(TrainStage)
    settings = params.run()
    with stage_ranks(settings.processes, "stages.train", []) as group:
        train_classifier(params, settings, group)


def train_classifier(params: TrainStage, settings: TrainParams, group: Ranks) -> None:
    lock = read_lock(workspace.MODELS_LOCK)
    result = train(
        settings,
        real_dir=workspace.real_dir(params.dataset),
        # mixed reads both sets; a single feasibility only its own
        synthetic_dirs={feas: workspace.synthetic_dir(params.attr, feas) for feas in FEASIBILITIES},
        feas=params.feas,
        protocol=params.protocol.pick(params.profile),
        model_dir=lock.path("clip"),
        prefix=params.prefix,
        out_dir=workspace.TRAIN,
        report_dir=workspace.TRAIN_REPORTS,
        checkpoint_dir=workspace.TRAIN_CHECKPOINTS,
        extra_params={
            "profile": params.profile,
            "dataset": params.dataset,
            "attr": params.attr,
            "clip": lock.fingerprint("clip"),
        },
        ranks=group,
    )
    if not group.main:
        return
    kept = (
        "final weights"
        if result.kept is None
        else f"{result.kept.split} top-1 {result.kept.top1:.4f} at step {result.kept.step}"
    )
    print(
        f"train: {result.images} images, {result.steps} steps in {result.seconds:.0f} s; kept {kept} -> {result.adapter}"
    )


if __name__ == "__main__":
    run_stage(main)
