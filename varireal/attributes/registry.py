"""Every attribute the study edits, by name: the one place a new attribute module is listed.

The names are varireal.vocabulary's (params and dvc.yaml read them without importing any method;
tests/test_attributes.py checks the two agree).
"""

from __future__ import annotations

from varireal.attributes.background import BACKGROUND
from varireal.attributes.color import COLOR
from varireal.attributes.kind import AttributeMethod
from varireal.attributes.texture import TEXTURE

ATTRIBUTE_METHODS: dict[str, AttributeMethod] = {method.name: method for method in (BACKGROUND, COLOR, TEXTURE)}


def attribute_method(name: str) -> AttributeMethod:
    if name not in ATTRIBUTE_METHODS:
        raise ValueError(f"attribute={name!r}: expected one of {', '.join(ATTRIBUTE_METHODS)}")
    return ATTRIBUTE_METHODS[name]
