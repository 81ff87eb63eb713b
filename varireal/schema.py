"""The base of every params.yaml schema: frozen, an unknown key is an error (a misspelling never passes),
and so is a non-finite float (`.inf`, `.nan`: no setting of this study means one)."""

from __future__ import annotations

import string
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def template_placeholders(template: str, allowed: Iterable[str], what: str) -> set[str]:
    """The {placeholders} a format-string template names; an unknown one or a bad format string is an error."""
    allowed = tuple(allowed)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"{what} {template!r} is not a valid format string ({err})") from None
    unknown = sorted(names - set(allowed))
    if unknown:
        raise ValueError(
            f"{what} {template!r} uses {{{unknown[0]}}}; allowed placeholders: "
            + ", ".join(f"{{{name}}}" for name in allowed)
        )
    return names
