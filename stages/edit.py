"""Stage `edit`: feasible or infeasible minimal edits of the real training images.

    python -m stages.edit <attribute> <feasibility>      # e.g. color infeasible

Writes data/edits/<attribute>/<feasibility>/ (shards/edits-NNNNN.tar, manifest.parquet). With
edit.early_stop the filter's VLM judges each round of candidates here, and a slot gets
no more candidates once one passes filter.threshold (varireal.edit.rounds).
"""

import sys

from stages import run_stage
from varireal import workspace
from varireal.attributes.pipelines import load_editors, model_info
from varireal.attributes.registry import attribute_method
from varireal.devices import resolve_device
from varireal.edit.edit_set import run_edits
from varireal.edit.items import plan_edits, read_sources
from varireal.judge.early_stop import EarlyStopJudge
from varireal.judge.questions import question_set
from varireal.launch import Ranks, stage_ranks
from varireal.models.lock import Lock, read_lock
from varireal.models.vlm import load_vlm
from varireal.params import load_params
from varireal.prompts.schema import PromptsDocument, read_prompts
from varireal.settings.edit import EditParams, EditStage
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES

USAGE = f"usage: python -m stages.edit <{'|'.join(ATTRIBUTES)}> <{'|'.join(FEASIBILITIES)}>"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ATTRIBUTES or args[1] not in FEASIBILITIES:
        raise ValueError(f"got {' '.join(args) or 'no arguments'}; {USAGE}")
    attribute, feasibility = args
    params = load_params(EditStage)
    settings = params.edit.pick(params.profile)
    with stage_ranks(settings.processes, "stages.edit", args) as group:
        edit_set(params, settings, attribute, feasibility, group)


def edit_set(params: EditStage, settings: EditParams, attribute: str, feasibility: str, group: Ranks) -> None:
    method = attribute_method(attribute)
    sources = read_sources(workspace.real_dir(params.dataset), workspace.masks_dir(params.dataset))
    document = read_prompts(workspace.prompts_file(params.dataset))
    items = plan_edits(
        sources,
        document,
        attribute,
        feasibility,
        settings.images_per_real,
        settings.candidates_per_slot,
        settings.seed,
        prefix=params.prefix,
    )
    lock = read_lock(workspace.MODELS_LOCK)
    device = resolve_device(settings.device)
    manifest = run_edits(
        method,
        items,
        workspace.edit_set_dir(attribute, feasibility),
        load_editors(lock, method.editors, device, offload=settings.offload, compile=settings.compile),
        settings.method(params.dataset, attribute, feasibility),
        work_size=settings.work_size,
        batch_size=settings.batch_size,
        shard_images=settings.shard_images,
        models=model_info(lock, method.editors),
        ranks=group,
        compiled=settings.compile,
        judge=early_stop_judge(params, attribute, document, lock, device) if settings.early_stop else None,
    )
    if manifest is None:  # rank 0 writes the manifest
        return
    counts = manifest["status"].value_counts().to_dict()
    print(f"edit {attribute}/{feasibility}: {len(manifest)} candidates from {len(sources)} real images, {counts}")


def early_stop_judge(
    params: EditStage, attribute: str, document: PromptsDocument, lock: Lock, device: str
) -> EarlyStopJudge:
    """The filter's judge, on the same device, asking what the filter stage asks (its answers reach that stage);
    the VLM is loaded only if a round has something to ask."""
    judging = params.filter.pick(params.profile)
    where = str(workspace.prompts_file(params.dataset))
    return EarlyStopJudge(
        lambda: load_vlm(lock.path("vlm"), device),
        judging,
        lock.fingerprint("vlm"),
        params.prefix,
        question_set(judging, attribute, document.questions, where, document.class_names),
    )


if __name__ == "__main__":
    run_stage(main)
