"""Stage `evaluate`: the trained adapter on the real test split (the only stage that reads it)."""

from pathlib import Path

from stages import run_stage
from varireal.finetune.evaluate import evaluate
from varireal.finetune.train import ADAPTER_FILE
from varireal.models.lock import read_lock
from varireal.params import load_params


def main() -> None:
    params = load_params()
    lock = read_lock(Path("data/models/lock.json"))
    metrics = evaluate(
        params.evaluate.pick(params.profile),
        real_dir=Path("data/real") / params.dataset,
        model_dir=lock.path("clip"),
        adapter=Path("data/train") / ADAPTER_FILE,
        template=params.train.pick(
            params.profile, params.dataset
        ).template,  # the class texts the adapter was trained with
        prefix=params.dataset_params().prefix,
        report_dir=Path("reports/eval"),
    )
    print(
        f"evaluate: top-1 {metrics['top1']:.4f}, top-{metrics['top5_k']} {metrics['top5']:.4f} on {metrics['images']} test images; "
        f"checkpoint {metrics['checkpoint']} ({metrics['checkpoint_note']})"
    )


if __name__ == "__main__":
    run_stage(main)
