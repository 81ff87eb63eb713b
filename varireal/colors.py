"""Colour values to RGB: the reference's colour table (or a file of ours in its format), then
matplotlib's CSS4 and XKCD names. The prompts stage names every colour value's RGB with it; the
edit stage falls back to it for a value written without one."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.colors as mcolors

ColorTable = Mapping[str, tuple[int, int, int]]  # colour name -> RGB, as the reference's ColorGen.COLORS
COLOR_SOURCES = ("reference", "file", "css4", "xkcd")  # what `resolve_color` may answer, first match wins


class UnknownColorError(ValueError):
    """A colour value that no table names; never replaced by an invented colour."""


def color_name(value: str) -> str:
    """The name a colour value stands for: the text of its first balanced ( ) group, as the reference
    reads it (`(ruddy)1.3` -> `ruddy`, a Compel weight dropped), else the whole value; stripped."""
    depth, start = 0, -1
    for position, char in enumerate(value):
        if char == "(":
            depth, start = depth + 1, position if depth == 0 else start
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                return value[start + 1 : position].strip()
    return value.strip()


def resolve_color(
    value: str, table: ColorTable | None = None, table_source: str = "reference"
) -> tuple[tuple[int, int, int], str]:
    """The RGB of a colour value and where it came from: `table` (the reference's COLORS, or a file
    of ours in its format: `table_source` says which; exact name, then ignoring case), else matplotlib's CSS4 names (spaces and hyphens dropped: "Royal Blue" ->
    royalblue), else its XKCD survey names ("xkcd:<name>"). Raises UnknownColorError otherwise."""
    name = color_name(value)
    folded = " ".join(name.split()).casefold()
    if table:
        rgb = table.get(name)
        if rgb is None:
            rgb = {" ".join(key.split()).casefold(): v for key, v in table.items()}.get(folded)
        if rgb is not None:
            return (int(rgb[0]), int(rgb[1]), int(rgb[2])), table_source
    css = folded.replace(" ", "").replace("-", "")
    if css in mcolors.CSS4_COLORS:
        return _hex_rgb(mcolors.CSS4_COLORS[css]), "css4"
    if f"xkcd:{folded}" in mcolors.XKCD_COLORS:
        return _hex_rgb(mcolors.XKCD_COLORS[f"xkcd:{folded}"]), "xkcd"
    raise UnknownColorError(
        f"colour value {value!r} (name {name!r}) is neither in the colour table"
        f"{'' if table else ' (none given)'} nor a CSS4 or XKCD colour name (matplotlib.colors)"
    )


def _hex_rgb(code: str) -> tuple[int, int, int]:
    red, green, blue = (int(code[i : i + 2], 16) for i in (1, 3, 5))
    return red, green, blue
