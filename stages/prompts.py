"""Stage `prompts`: feasible and infeasible attribute values for the dataset."""

from pathlib import Path

from stages import run_stage
from varireal.devices import resolve_device
from varireal.io import read_table
from varireal.models.load import load_llm
from varireal.models.lock import read_lock
from varireal.params import load_params
from varireal.prompts.build import build_attribute_lists, write_prompts
from varireal.prompts.reference import Transfer


def main() -> None:
    params = load_params()
    settings = params.prompts.pick(params.profile)
    classes = read_table(Path("data/real") / params.dataset / "classes.csv")
    lock = read_lock(Path("data/models/lock.json"))
    # The LLM is loaded only when it will be asked (prompts.source: llm).
    llm = load_llm(lock.path("llm"), resolve_device("auto")) if settings.source == "llm" else None
    transfer = Transfer(params.fetch.timeout_s, params.fetch.retries, params.fetch.retry_wait_s)
    document = build_attribute_lists(
        params.dataset,
        classes.sort_values("class_index")["class_name"].tolist(),
        settings,
        llm,
        lock.record("llm"),
        downloads=Path("data/downloads"),
        transfer=transfer,
    )
    write_prompts(Path("data/prompts") / f"{params.dataset}.json", document)
    print(f"prompts for {params.dataset}: source={document['source']}, attempts={len(document['attempts'])}")


if __name__ == "__main__":
    run_stage(main)
