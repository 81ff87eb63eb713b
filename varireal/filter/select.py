"""One accepted edit per slot: the best candidate at or above the threshold, and the acceptance numbers."""

from __future__ import annotations

from typing import Any

import pandas as pd

SLOT_COLUMNS = ["source_id", "slot", "status", "edit_id", "best_score", "candidates", "generated", "reason"]


def select_slots(manifest: pd.DataFrame, threshold: float) -> tuple[pd.Series, pd.DataFrame]:
    """(accepted flag per manifest row, one row per slot).

    Per (source_id, slot): the scored candidate with the highest score >= threshold; ties go
    to the lowest candidate index, so the choice does not depend on row order.
    """
    accepted = pd.Series(False, index=manifest.index)
    slots = []
    for (source_id, slot), group in manifest.groupby(["source_id", "slot"], sort=True):
        scored = group[group["score"].notna()]
        passing = scored[scored["score"] >= threshold]
        best_score = float(scored["score"].max()) if len(scored) else None
        if len(passing):
            chosen = passing.sort_values(["score", "candidate"], ascending=[False, True], kind="stable").index[0]
            accepted[chosen] = True
            row = ("accepted", manifest.at[chosen, "edit_id"], best_score, "")
        elif len(scored):
            row = ("rejected", "", best_score, f"no candidate scored >= {threshold} (best {best_score})")
        else:
            row = ("rejected", "", None, "no candidate was edited and readable")
        slots.append({"source_id": source_id, "slot": slot, "status": row[0], "edit_id": row[1],
                      "best_score": row[2], "candidates": len(group), "generated": _generated(group), "reason": row[3]})
    return accepted, pd.DataFrame(slots, columns=SLOT_COLUMNS)


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
        "acceptance_rate": round(accepted / len(slots), 4) if len(slots) else 0.0,
        "candidates": len(manifest),
        "generated": generated,
        "generated_per_slot": round(generated / len(slots), 4) if len(slots) else 0.0,
        "scored": int((manifest["filter_status"] == "scored").sum()),
        "unreadable": int((manifest["filter_status"] == "unreadable").sum()),
        "passed": int(manifest["passed"].sum()),
        "mean_score": round(float(scores.mean()), 4) if len(scores) else 0.0,
    }

