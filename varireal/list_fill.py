"""Whether the value lists can fill edit.<profile>.images_per_real slots per real image: `varireal plan`'s
warning before anything runs (the edit stage itself stops on a short list: varireal.edit.items.plan_edits)."""

from __future__ import annotations

from pathlib import Path

from varireal import workspace
from varireal.prompts.schema import PromptsDocument, list_key, per_class
from varireal.settings.whole import Params
from varireal.vocabulary import FEASIBILITIES


def value_list_warnings(params: Params, prompts_root: Path = workspace.PROMPTS) -> list[str]:
    """Why the value lists may not fill edit.<profile>.images_per_real: each slot of a real image takes a
    different value of its list, so the edit stage stops on a list with fewer values (plan_edits)."""
    if params.prompts.pick(params.profile).value_draw == "positions":
        return []  # the reference's draw: any non-empty list fills every slot (repeats when it is short)
    slots = params.edit.pick(params.profile).images_per_real
    wanted, section = f"edit.{params.profile}.images_per_real={slots}", f"prompts.{params.profile}"
    fix = f"lower images_per_real, or raise {section}.min_values (and max_values) to at least {slots}"
    document = prompts_root / f"{params.dataset}.json"
    if document.is_file():
        sizes = list_sizes(PromptsDocument.model_validate_json(document.read_text(encoding="utf-8")))
        short = sorted((size, key) for key, size in sizes.items() if size < slots)
        if not short:
            return []
        named = ", ".join(f"{key} has {size}" for size, key in short[:5]) + (
            f", and {len(short) - 5} more" if len(short) > 5 else ""
        )
        return [
            f"{wanted}, but {len(short)} of the {len(sizes)} value lists in {document} hold fewer values ({named}); "
            f"each slot of a real image takes a different value, so the edit stage stops there: lower images_per_real, or rebuild the lists with at least {slots} values "
            f"each ({section}.min_values)"
        ]
    prompts = params.prompts.pick(params.profile)
    not_built = f"{document} is not built yet, so the list sizes are {section}'s bounds"
    if slots > prompts.max_values:
        return [
            f"{wanted}, but every value list holds at most {section}.max_values={prompts.max_values} values "
            f"({not_built}); each slot of a real image takes a different value, so the edit stage will stop: {fix}"
        ]
    if slots > prompts.min_values:
        return [
            f"{wanted}, but a value list may hold as few as {section}.min_values={prompts.min_values} values "
            f"({not_built}); a list shorter than {slots} stops the edit stage: {fix}"
        ]
    return []


def list_sizes(document: PromptsDocument) -> dict[str, int]:
    """Values per list (attribute[/class or group]/feasibility), as the edit stage draws them."""
    sizes = {}
    for attribute, lists in document.lists.items():
        pairs = lists.items() if per_class(lists) else [(None, lists)]
        for name, pair in pairs:
            for feasibility in FEASIBILITIES:
                node = getattr(pair, feasibility)
                groups = node.items() if isinstance(node, dict) else [(name, node)]
                sizes |= {list_key(attribute, feasibility, group): len(values) for group, values in groups}
    return sizes
