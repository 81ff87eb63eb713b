"""Stage `filter`: a VLM judges each edit with four yes/no questions; one accepted edit per slot.

    python -m stages.filter <attr> <feas>      # e.g. python -m stages.filter background infeasible

Reads data/edits/<attr>/<feas>/ (and, with filter.<profile>.questions: reference, the reference's
questions from data/prompts/<dataset>.json), writes data/synthetic/<attr>/<feas>/ and reports/filter/<attr>-<feas>.json.
Answers the edit stage already recorded (its early stop) are taken as they are: then no model is loaded.
"""

import argparse

from stages import run_stage
from varireal import workspace
from varireal.devices import resolve_device
from varireal.filter import filter_set
from varireal.io import write_json
from varireal.judge.questions import Questions, question_set
from varireal.judge.rule import select_slots, summarize
from varireal.launch import Ranks, stage_ranks
from varireal.models.lock import read_lock
from varireal.models.vlm import load_vlm
from varireal.params import load_params
from varireal.prompts.schema import read_prompts
from varireal.settings.filter import FilterParams, FilterStage
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.filter", description=__doc__.splitlines()[0])
    parser.add_argument("attr", choices=ATTRIBUTES)
    parser.add_argument("feas", choices=FEASIBILITIES, help="mixed is drawn from both at training time")
    return parser.parse_args(argv)  # None: the command line's own


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params(FilterStage)
    settings = params.filter.pick(params.profile)
    with stage_ranks(settings.processes, "stages.filter", [args.attr, args.feas]) as group:
        filter_edits(params, settings, args.attr, args.feas, group)


def filter_edits(params: FilterStage, settings: FilterParams, attr: str, feas: str, group: Ranks) -> None:
    lock = read_lock(workspace.MODELS_LOCK)
    record = lock.record("vlm")
    models_key = lock.fingerprint("vlm")
    manifest = filter_set(
        workspace.edit_set_dir(attr, feas),
        workspace.synthetic_dir(attr, feas),
        lambda: load_vlm(lock.path("vlm"), resolve_device(settings.device)),  # not loaded when every answer is recorded
        settings,
        models_key=models_key,
        prefix=params.prefix,
        vlm_info={"repo": record.get("repo_id"), "revision": record.get("revision"), "fingerprint": models_key},
        ranks=group,
        questions=asked_questions(params, settings, attr),
    )
    if manifest is None:  # rank 0 writes the manifest and the report
        return
    _, slots = select_slots(manifest, settings.threshold, settings.accept_unfiltered_after)
    summary = summarize(slots, manifest)
    write_json(workspace.filter_report(attr, feas), summary)
    print(
        f"filter {attr}/{feas}: {summary['accepted']}/{summary['slots']} slots accepted "
        f"({summary['acceptance_rate']:.1%}), mean score {summary['mean_score']}"
    )


def asked_questions(params: FilterStage, settings: FilterParams, attr: str) -> Questions:
    """filter.<profile>.questions and .class_names resolved for `attr`; the prompts document is read only when
    either is `reference`."""
    path = workspace.prompts_file(params.dataset)
    if "reference" not in (settings.questions, settings.class_names):
        return question_set(settings, attr, None, str(path))
    document = read_prompts(path)
    return question_set(settings, attr, document.questions, str(path), document.class_names)


if __name__ == "__main__":
    run_stage(main)
