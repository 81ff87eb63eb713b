"""The `gallery:` section of params.yaml: one contact sheet per attribute."""

from __future__ import annotations

from pydantic import Field

from varireal.settings.base import Strict, Study


class GalleryParams(Strict):
    rows: int = Field(gt=0, description="real images shown per attribute")
    tile: int = Field(ge=32, description="tile size (px) of each image in the sheet")


class GalleryStage(Study):
    """What the gallery stage reads."""

    gallery: GalleryParams
