"""Stage `evaluate`: the trained adapter on the real test split (the only stage that reads it)."""

from stages import run_stage
from varireal import workspace
from varireal.finetune.evaluate import evaluate
from varireal.finetune.train import ADAPTER_FILE
from varireal.models.lock import read_lock
from varireal.params import load_params
from varireal.settings.evaluate import EvaluateStage


def main() -> None:
    params = load_params(EvaluateStage)
    lock = read_lock(workspace.MODELS_LOCK)
    trained = params.train.pick(params.profile, params.dataset)
    metrics = evaluate(
        params.evaluate.pick(params.profile),
        real_dir=workspace.real_dir(params.dataset),
        model_dir=lock.path("clip"),
        adapter=workspace.TRAIN / ADAPTER_FILE,
        # the class texts and the activation the adapter was trained with
        template=trained.template,
        prefix=params.prefix,
        report_dir=workspace.EVAL_REPORTS,
        activation=trained.activation,
    )
    print(
        f"evaluate: top-1 {metrics['top1']:.4f}, top-{metrics['top5_k']} {metrics['top5']:.4f} on {metrics['images']} test images; "
        f"checkpoint {metrics['checkpoint']} ({metrics['checkpoint_note']})"
    )


if __name__ == "__main__":
    run_stage(main)
