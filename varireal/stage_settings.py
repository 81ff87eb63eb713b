"""The settings every stage will run with, fully resolved: what `varireal settings` prints.

One flat mapping of dotted setting names to values per stage, keyed by the stage's name in
dvc.yaml (`masks`, `edit@color-feasible`, `train`, ...): the profile picked, the dataset's
differences merged, the feasibility applied. It reads params.yaml only (no model, no data), so
a user can read it before paying for a GPU run, and docs/fidelity.md is checked against it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from varireal.judge.questions import expected_answers
from varireal.settings.whole import Params
from varireal.vocabulary import ATTRIBUTES, FEASIBILITIES


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; models are dumped as JSON values; lists stay lists."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(flat(value[key], f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def stage_settings(params: Params) -> dict[str, dict[str, Any]]:
    """Every stage of dvc.yaml (matrix stages expanded) -> its resolved settings."""
    profile, dataset = params.profile, params.dataset
    common = {"profile": profile, "dataset": dataset, "prefix": params.prefix}
    stages: dict[str, dict[str, Any]] = {
        "fetch": {**common, "protocol": params.protocol.pick(profile), **flat(params.fetch, "fetch.")},
        "models": {**common, **flat(params.models.for_profile(profile), "models.")},
        "masks": {**common, **flat(params.masks.pick(profile))},
        "prompts": {**common, **flat(params.prompts.pick(profile))},
    }
    edit, judge = params.edit.pick(profile), params.filter.pick(profile)
    for attribute in ATTRIBUTES:
        for feasibility in FEASIBILITIES:
            name = f"{attribute}-{feasibility}"
            scalars = {key: value for key, value in flat(edit).items() if not key.startswith(("methods.", "datasets."))}
            stages[f"edit@{name}"] = {
                **common,
                "attribute": attribute,
                "feasibility": feasibility,
                **scalars,
                **flat(edit.method(dataset, attribute, feasibility), f"{attribute}."),
                **({f"early_stop.{k}": v for k, v in flat(judge).items()} if edit.early_stop else {}),
            }
            stages[f"filter@{name}"] = {
                **common,
                "attribute": attribute,
                "feasibility": feasibility,
                **flat(judge),
                "expected_answers": list(expected_answers(feasibility)),
            }
    for attribute in ATTRIBUTES:
        stages[f"gallery@{attribute}"] = {**common, "attribute": attribute, **flat(params.gallery)}
    train = params.train.pick(profile, dataset)
    stages["train"] = {
        **common,
        "attr": params.attr,
        "feas": params.feas,
        "protocol": params.protocol.pick(profile),
        **flat(train),
    }
    stages["evaluate"] = {
        **common,
        "protocol": params.protocol.pick(profile),
        "template": train.template,
        "activation": train.activation,
        **flat(params.evaluate.pick(profile)),
    }
    return stages


def render_json(settings: dict[str, dict[str, Any]]) -> str:
    return json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False)


def render_table(settings: dict[str, dict[str, Any]]) -> str:
    """One block per stage: `  setting  value`, names padded to one column."""
    width = max(len(key) for values in settings.values() for key in values)
    lines: list[str] = []
    for stage, values in settings.items():
        lines += [
            stage,
            *(f"  {key.ljust(width)}  {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"
