"""Stage `gallery`: the contact sheet of one attribute, reports/gallery/<attr>.png.

python -m stages.gallery <attr>      # e.g. python -m stages.gallery texture
"""

import argparse

from stages import run_stage
from varireal import workspace
from varireal.gallery import Sources, build_gallery
from varireal.params import load_params
from varireal.settings.gallery import GalleryStage
from varireal.vocabulary import ATTRIBUTES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.gallery", description=__doc__.splitlines()[0])
    parser.add_argument("attr", choices=ATTRIBUTES)
    attr = parser.parse_args(argv).attr  # None: the command line's own
    params = load_params(GalleryStage)
    sources = Sources(
        real_dir=workspace.real_dir(params.dataset),
        masks_dir=workspace.masks_dir(params.dataset),
        edits_dir=workspace.EDITS / attr,
        synthetic_dir=workspace.SYNTHETIC / attr,
    )
    shown = build_gallery(sources, workspace.gallery_file(attr), rows=params.gallery.rows, tile=params.gallery.tile)
    print(f"gallery {attr}: {shown} real images")


if __name__ == "__main__":
    run_stage(main)
