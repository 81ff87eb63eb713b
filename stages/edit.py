"""Stage `edit`: feasible or infeasible minimal edits of the real training images.

    python -m stages.edit <attribute> <feasibility>      # e.g. color infeasible

Writes data/edits/<attribute>/<feasibility>/ (shards/edits-NNNNN.tar, manifest.parquet). With
edit.early_stop the filter's VLM judges each round of candidates here, and a slot gets
no more candidates once one passes filter.threshold (varireal.edit.rounds).
"""

import sys
from pathlib import Path

from stages import run_stage
from varireal.devices import resolve_device
from varireal.edit.edit_set import run_edits
from varireal.edit.editors import load_editors, model_info
from varireal.edit.items import ATTRIBUTES, FEASIBILITIES, plan_edits, read_sources
from varireal.edit.settings import EditParams
from varireal.judge.early_stop import EarlyStopJudge
from varireal.judge.questions import question_set
from varireal.launch import Ranks, stage_ranks
from varireal.models.lock import read_lock
from varireal.models.vlm import load_vlm
from varireal.params import Params, load_params
from varireal.prompts.build import read_prompts

USAGE = f"usage: python -m stages.edit <{'|'.join(ATTRIBUTES)}> <{'|'.join(FEASIBILITIES)}>"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ATTRIBUTES or args[1] not in FEASIBILITIES:
        raise ValueError(f"got {' '.join(args) or 'no arguments'}; {USAGE}")
    attribute, feasibility = args
    params = load_params()
    settings = params.edit.pick(params.profile)
    with stage_ranks(settings.processes, "stages.edit", args) as group:
        edit_set(params, settings, attribute, feasibility, group)


def edit_set(params: Params, settings: EditParams, attribute: str, feasibility: str, group: Ranks) -> None:
    method = settings.method(params.dataset, attribute, feasibility)
    sources = read_sources(Path("data/real") / params.dataset, Path("data/masks") / params.dataset)
    document = read_prompts(Path("data/prompts") / f"{params.dataset}.json")
    prefix = params.dataset_params().prefix
    items = plan_edits(
        sources,
        document,
        attribute,
        feasibility,
        settings.images_per_real,
        settings.candidates_per_slot,
        settings.seed,
        prefix=prefix,
    )
    lock = read_lock(Path("data/models/lock.json"))
    device = resolve_device(settings.device)
    editors = load_editors(lock, attribute, device, offload=settings.offload, compile=settings.compile)
    # Early stop: the filter's judge, on the same device, answers each round (its answers reach the filter stage);
    # loaded only if a round has something to ask.
    judging = params.filter.pick(params.profile)
    judge = (
        EarlyStopJudge(
            lambda: load_vlm(lock.path("vlm"), device),
            judging,
            lock.fingerprint("vlm"),
            prefix,
            question_set(
                judging, attribute, document.questions, f"data/prompts/{params.dataset}.json"
            ),  # as the filter asks
        )
        if settings.early_stop
        else None
    )
    manifest = run_edits(
        items,
        Path("data/edits") / attribute / feasibility,
        editors,
        method,
        work_size=settings.work_size,
        batch_size=settings.batch_size,
        shard_images=settings.shard_images,
        models=model_info(lock, attribute),
        ranks=group,
        compiled=settings.compile,
        judge=judge,
    )
    if manifest is None:  # rank 0 writes the manifest
        return
    counts = manifest["status"].value_counts().to_dict()
    print(f"edit {attribute}/{feasibility}: {len(manifest)} candidates from {len(sources)} real images, {counts}")


if __name__ == "__main__":
    run_stage(main)
