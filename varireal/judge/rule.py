"""One accepted edit per slot, and the acceptance numbers.

Two rules, `filter.<profile>.accept_unfiltered_after`:
- null (ours): each slot alone takes its best candidate at or above the threshold; a slot without
  one is rejected.
- N (the reference: 2): a real image's candidates are tried as the reference's loop tried them,
  slot by slot, each slot's candidates in order, counting cycles per real image and never
  resetting (main_pipeline.py:160,193,234). In cycles 1..N a candidate is accepted when it reaches
  the threshold; from cycle N+1 on every judged candidate is accepted whatever its score
  (`accepted_by: after_tries`). A candidate without an image or answers takes a cycle and is not
  accepted; a slot whose candidates run out is rejected (the reference had no limit per slot).

The edit stage's early stop (varireal.judge.early_stop) asks `decide_source` which candidates to make
next, and the filter stage decides from the same function, so both accept the same edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

SLOT_COLUMNS = [
    "source_id",
    "slot",
    "status",
    "edit_id",
    "accepted_by",
    "best_score",
    "candidates",
    "generated",
    "reason",
]


@dataclass(frozen=True)
class Tried:
    """One planned candidate as far as the rule needs it."""

    candidate: int
    edit_id: str
    made: bool  # False: the edit stage did not make it (yet)
    score: float | None  # None: no image or no answers


@dataclass(frozen=True)
class SlotDecision:
    status: Literal["accepted", "rejected", "open"]  # open: a candidate must be made first
    edit_id: str = ""
    accepted_by: Literal["", "score", "after_tries"] = ""
    next_candidate: int | None = None  # open: the candidate to make next, if one can be made now
    reason: str = ""


def decide_source(slots: Sequence[Sequence[Tried]], threshold: float, accept_after: int | None) -> list[SlotDecision]:
    """The decision per slot of one real image; `slots` in slot order, each with its candidates in order."""
    if accept_after is None:
        return [_alone(candidates, threshold) for candidates in slots]
    return _in_cycles(slots, threshold, accept_after)


def _alone(candidates: Sequence[Tried], threshold: float) -> SlotDecision:
    """Ours: the best passing candidate (ties to the lowest index); else the next one to make; else rejected."""
    scored = [t for t in candidates if t.made and t.score is not None]
    passing = [t for t in scored if t.score >= threshold]  # type: ignore[operator]
    if passing:
        best = min(passing, key=lambda t: (-t.score, t.candidate))  # type: ignore[operator]
        return SlotDecision("accepted", best.edit_id, "score")
    unmade = [t.candidate for t in candidates if not t.made]
    best_score = max((t.score for t in scored), default=None)  # type: ignore[type-var]
    reason = (
        f"no candidate scored >= {threshold} (best {best_score})" if scored else "no candidate was edited and readable"
    )
    return (
        SlotDecision("open", next_candidate=min(unmade), reason=reason)
        if unmade
        else SlotDecision("rejected", reason=reason)
    )


def _in_cycles(slots: Sequence[Sequence[Tried]], threshold: float, accept_after: int) -> list[SlotDecision]:
    """The reference's loop over one real image: cycles counted across its slots, gated only up to accept_after."""
    decisions: list[SlotDecision] = []
    cycle, blocked = 0, False
    for candidates in slots:
        if blocked:  # its cycle numbers depend on an earlier slot still open; its first candidate is always tried
            first = candidates[0]
            decisions.append(
                SlotDecision(
                    "open",
                    next_candidate=None if first.made else first.candidate,
                    reason="an earlier slot of its real image is unfinished",
                )
            )
            continue
        decision = None
        for tried in candidates:
            if not tried.made:
                decision, blocked = (
                    SlotDecision(
                        "open", next_candidate=tried.candidate, reason=f"candidate {tried.candidate} was not made"
                    ),
                    True,
                )
                break
            cycle += 1
            if tried.score is None:
                continue
            if tried.score >= threshold:
                decision = SlotDecision("accepted", tried.edit_id, "score")
                break
            if cycle > accept_after:
                decision = SlotDecision("accepted", tried.edit_id, "after_tries")
                break
        decisions.append(
            decision
            or SlotDecision(
                "rejected",
                reason=f"no candidate reached {threshold} within the first {accept_after} cycles of its real image",
            )
        )
    return decisions


def select_slots(
    manifest: pd.DataFrame, threshold: float, accept_after: int | None = None
) -> tuple[pd.Series, pd.DataFrame]:
    """(why each manifest row was accepted: 'score', 'after_tries' or '', one row per slot).

    A slot still open (a candidate it needs was not made: the edit stage's early stop ran under
    another threshold or rule) is rejected with the reason.
    """
    accepted_by = pd.Series("", index=manifest.index)
    slots = []
    for source_id, rows in manifest.groupby("source_id", sort=True):
        groups = [group.sort_values("candidate", kind="stable") for _, group in rows.groupby("slot", sort=True)]
        tried = [
            [
                Tried(int(r.candidate), str(r.edit_id), _made(r), None if pd.isna(r.score) else float(r.score))
                for r in group.itertuples()
            ]
            for group in groups
        ]
        for group, decision in zip(groups, decide_source(tried, threshold, accept_after)):
            if decision.status == "accepted":
                accepted_by[group.index[group["edit_id"] == decision.edit_id][0]] = decision.accepted_by
            scores = group["score"].dropna()
            slots.append(
                {
                    "source_id": source_id,
                    "slot": group["slot"].iloc[0],
                    "status": "accepted" if decision.status == "accepted" else "rejected",
                    "edit_id": decision.edit_id,
                    "accepted_by": decision.accepted_by,
                    "best_score": float(scores.max()) if len(scores) else None,
                    "candidates": len(group),
                    "generated": _generated(group),
                    "reason": decision.reason,
                }
            )
    return accepted_by, pd.DataFrame(slots, columns=SLOT_COLUMNS)


def _made(row: Any) -> bool:
    return getattr(row, "status", "edited") != "not_needed"


def _generated(rows: pd.DataFrame) -> int:
    """Candidates the edit stage made (planned ones its early stop left out are `not_needed`)."""
    return int((rows["status"] != "not_needed").sum()) if "status" in rows else len(rows)


def summarize(slots: pd.DataFrame, manifest: pd.DataFrame) -> dict[str, Any]:
    """Acceptance numbers for DVC metrics."""
    accepted = int((slots["status"] == "accepted").sum())
    scores = manifest["score"].dropna()
    generated = _generated(manifest)
    return {
        "slots": len(slots),
        "accepted": accepted,
        "accepted_after_tries": int((slots["accepted_by"] == "after_tries").sum()),
        "acceptance_rate": round(accepted / len(slots), 4) if len(slots) else 0.0,
        "candidates": len(manifest),
        "generated": generated,
        "generated_per_slot": round(generated / len(slots), 4) if len(slots) else 0.0,
        "scored": int((manifest["filter_status"] == "scored").sum()),
        "passed": int(manifest["passed"].sum()),
        "mean_score": round(float(scores.mean()), 4) if len(scores) else 0.0,
    }
