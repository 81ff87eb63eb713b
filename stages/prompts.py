"""Stage `prompts`: feasible and infeasible attribute values for the dataset."""

from stages import run_stage
from varireal import workspace
from varireal.devices import resolve_device
from varireal.io import read_table
from varireal.models.load import load_llm
from varireal.models.lock import read_lock
from varireal.params import load_params
from varireal.prompts.build import build_attribute_lists, write_prompts
from varireal.prompts.reference import Transfer
from varireal.settings.prompts import PromptsStage


def main() -> None:
    params = load_params(PromptsStage)
    settings = params.prompts.pick(params.profile)
    classes = read_table(workspace.real_dir(params.dataset) / "classes.csv")
    lock = read_lock(workspace.MODELS_LOCK)
    # The LLM is loaded only when it will be asked (prompts.source: llm).
    llm = load_llm(lock.path("llm"), resolve_device("auto")) if settings.source == "llm" else None
    transfer = Transfer(params.fetch.timeout_s, params.fetch.retries, params.fetch.retry_wait_s)
    document = build_attribute_lists(
        params.dataset,
        classes.sort_values("class_index")["class_name"].tolist(),
        settings,
        llm,
        lock.record("llm"),
        downloads=workspace.DOWNLOADS,
        transfer=transfer,
    )
    write_prompts(workspace.prompts_file(params.dataset), document)
    print(f"prompts for {params.dataset}: source={document['source']}, attempts={len(document['attempts'])}")


if __name__ == "__main__":
    run_stage(main)
