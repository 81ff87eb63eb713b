"""Stage `fetch`: the chosen dataset into data/real/<dataset>/ with a manifest."""

from stages import run_stage
from varireal import workspace
from varireal.datasets.fetch import fetch_dataset
from varireal.params import load_params
from varireal.settings.fetch import FetchStage


def main() -> None:
    params = load_params(FetchStage)
    manifest = fetch_dataset(
        params.dataset,
        workspace.real_dir(params.dataset),
        params.fetch,
        workspace.DOWNLOADS,
        params.protocol.pick(params.profile),
    )
    counts = manifest.groupby("split").size().to_dict()
    print(f"{params.dataset}: {manifest['class_name'].nunique()} classes, images per split {counts}")


if __name__ == "__main__":
    run_stage(main)
