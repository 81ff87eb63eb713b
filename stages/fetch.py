"""Stage `fetch`: the chosen dataset into data/real/<dataset>/ with a manifest."""

from pathlib import Path

from stages import run_stage
from varireal.datasets.fetch import fetch_dataset
from varireal.params import load_params


def main() -> None:
    params = load_params()
    manifest = fetch_dataset(
        params.dataset,
        Path("data/real") / params.dataset,
        params.fetch,
        Path("data/downloads"),
        params.protocol.pick(params.profile),
    )
    counts = manifest.groupby("split").size().to_dict()
    print(f"{params.dataset}: {manifest['class_name'].nunique()} classes, images per split {counts}")


if __name__ == "__main__":
    run_stage(main)
