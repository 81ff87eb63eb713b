"""Build one dataset into the layout of layout.py: the entry point of the `fetch` stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from varireal.datasets import demo, fgvc_aircraft, oxford_pets, stanford_cars
from varireal.datasets.layout import Collected, write_dataset
from varireal.settings.fetch import FetchParams
from varireal.vocabulary import Protocol

COLLECTORS: dict[str, Callable[[FetchParams, Path], Collected]] = {
    "demo": lambda params, download_dir: demo.collect(params.demo, download_dir),
    "oxford_pets": oxford_pets.collect,
    "fgvc_aircraft": fgvc_aircraft.collect,
    "stanford_cars": stanford_cars.collect,
}
DATASET_NAMES = tuple(COLLECTORS)


def fetch_dataset(
    name: str, out_dir: Path, params: FetchParams, download_dir: Path, protocol: Protocol = "heldout_val"
) -> pd.DataFrame:
    """Build dataset `name` into out_dir (images, manifest.csv, classes.csv, rejected.csv, sources.json)."""
    if name not in COLLECTORS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    collected = COLLECTORS[name](params, Path(download_dir))
    return write_dataset(Path(out_dir), name, collected, params, protocol)
