"""The procedure switches: the reference's faults a run may reproduce, each one param from its correction.

A run's *procedure* is the value of every declared switch in its params. Runs of different
procedures are never pooled or paired; `varireal study --compare KEY` lays them out as one table
per procedure, and each claim's verdict under each procedure side by side. Declaring a later
switch is one line in SWITCHES (docs/fidelity.md lists every switch of the paper profile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from varireal.study.runs import Run, StudyError


@dataclass(frozen=True)
class Switch:
    """One param (its path with `{profile}` for the profile's block) and what its values mean."""

    template: str  # "filter.{profile}.show_answer"
    name: str  # short, for column heads and file names
    reference: Any  # the value that reproduces the reference's fault (the paper's procedure)

    def key(self, profile: str) -> str:
        return self.template.format(profile=profile)


# The reference's faults that change results (docs/fidelity.md): the filter's prompt holds the expected
# answer; after two failed cycles every edit is kept unjudged; the checkpoint is chosen on the test split.
SWITCHES: tuple[Switch, ...] = (
    Switch("filter.{profile}.show_answer", "show_answer", True),
    Switch("filter.{profile}.accept_unfiltered_after", "accept_unfiltered_after", 2),
    Switch("protocol.{profile}", "protocol", "paper"),
)

Procedure = tuple[tuple[str, Any], ...]  # ((key, value), ...) in SWITCHES' order


def yaml_value(value: Any) -> str:
    """A value as `-S key=VALUE` and params.yaml write it: true, null, 2, paper."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def switch_keys(profile: str) -> dict[str, Switch]:
    return {switch.key(profile): switch for switch in SWITCHES}


def procedure_of(run: Run) -> Procedure:
    """Every declared switch's value in the run's params (absent: None, as a run older than the switch)."""
    profile = str(run.params.get("profile"))
    return tuple((key, run.params.get(key)) for key in switch_keys(profile))


def compared_keys(names: list[str] | tuple[str, ...], profiles: set[str]) -> tuple[str, ...]:
    """The switch keys `--compare` names, checked: each must be a declared switch of the runs' profile."""
    declared = {key: switch for profile in sorted(profiles) for key, switch in switch_keys(profile).items()}
    unknown = [name for name in names if name not in declared]
    if unknown:
        raise StudyError(
            f"--compare {unknown[0]}: not a declared procedure switch of profile {', '.join(sorted(profiles))}; "
            f"declared: {', '.join(declared)} (varireal/study/procedure.py SWITCHES)"
        )
    return tuple(dict.fromkeys(names))


def side(key: str, value: Any) -> str:
    """Whether a switch's value reproduces the reference's fault or corrects it."""
    switch = _switch_of(key)
    return "the reference's" if switch is not None and value == switch.reference else "corrected"


def describe(procedure: Procedure) -> str:
    """`key=value (side)` for every switch: what a table's header says about its procedure."""
    return ", ".join(f"{key}={yaml_value(value)} ({side(key, value)})" for key, value in procedure)


def short(procedure: Procedure, keys: tuple[str, ...]) -> str:
    """Only the compared switches, as a column head: `show_answer=true (the reference's)`."""
    chosen = [(key, value) for key, value in procedure if key in keys]
    return ", ".join(f"{_name(key)}={yaml_value(value)} ({side(key, value)})" for key, value in chosen) or "all runs"


def slug(procedure: Procedure, keys: tuple[str, ...]) -> str:
    """A file-name part for a procedure's figure: `show_answer-true`."""
    return "_".join(f"{_name(key)}-{yaml_value(value)}" for key, value in procedure if key in keys) or "all"


def _name(key: str) -> str:
    switch = _switch_of(key)
    return switch.name if switch is not None else key


def reference_count(procedure: Procedure) -> int:
    """How many switches are at the reference's value: more first, so the paper's procedure leads."""
    return sum(1 for key, value in procedure if (s := _switch_of(key)) is not None and value == s.reference)


def _switch_of(key: str) -> Switch | None:
    for switch in SWITCHES:
        head, _, tail = switch.template.partition("{profile}")
        if key.startswith(head) and key.endswith(tail) and key.count(".") == switch.template.count("."):
            return switch
    return None
