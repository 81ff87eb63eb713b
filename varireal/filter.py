"""The filter over one edit set: judge every candidate, keep one per slot, write the synthetic set.

Reads data/edits/<attr>/<feas>/ (shards/edits-NNNNN.tar + manifest.parquet) and writes out_dir:
- answers/answers-NNNNN.parquet: the answers for edit shard NNNNN, each row with its key (what the
  answers depend on: image bytes, questions, instruction, batch size, model); the resume unit,
  written whole, so a killed run loses at most one shard's answers;
- shards/synthetic-NNNNN.tar: the accepted edits of edit shard NNNNN, the same PNG bytes, each
  with a record of its full provenance and the filter's answers (a webdataset shard);
- manifest.parquet: every candidate with its answers, score and `accepted` flag, and for an
  accepted one where its image lies (shard, offset, size) in the synthetic shards;
- slots.csv: one row per slot, accepted or rejected (and why).

Batches are fixed slices of each edit shard's candidates, so a resumed run groups them exactly
as an uninterrupted one and writes the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from varireal.edit.store import MANIFEST_COLUMNS as EDIT_COLUMNS
from varireal.io import read_table, write_table
from varireal.judge.answers import answer_key, judge_shard
from varireal.judge.questions import QUESTIONS, Candidate, FilterParams, Questions, expected_answers, questions_for
from varireal.judge.rule import select_slots
from varireal.judge.yes_no import YesNoJudge, answers_score
from varireal.launch import SINGLE, Ranks
from varireal.shards import Sample, ShardStore

QUESTION_COLUMNS = [f"{q}_{part}" for q in QUESTIONS for part in ("question", "expected", "p_yes", "reply", "answer")]
EDIT_STATUSES = ("edited", "skipped", "not_needed")
FILTER_COLUMNS = [
    *QUESTION_COLUMNS,
    "answer_key",
    "filter_status",
    "filter_reason",
    "score",
    "threshold",
    "passed",
    "accepted",
    "accepted_by",
    "edit_shard",
    "edit_offset",
    "edit_size",
    "vlm",
]


def read_edit_manifest(edit_dir: Path) -> pd.DataFrame:
    path = edit_dir / "manifest.parquet"
    try:
        edits = read_table(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{path}: not found; run the edit stage for this attribute and feasibility first"
        ) from err
    missing = [c for c in EDIT_COLUMNS if c not in edits.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; the edit manifest needs {EDIT_COLUMNS}")
    duplicated = sorted(set(edits.loc[edits["edit_id"].duplicated(), "edit_id"]))
    if duplicated:
        raise ValueError(f"{path}: edit_id must be unique; repeated: {duplicated[:5]}")
    unknown = sorted(set(edits["status"]) - set(EDIT_STATUSES))
    if unknown:
        raise ValueError(f"{path}: status must be one of {', '.join(EDIT_STATUSES)}; found {unknown}")
    edits["reason"] = edits["reason"].fillna("")
    return edits.sort_values(["shard", "edit_id"], kind="stable").reset_index(drop=True)


def _candidate(edit_dir: Path, row: Any) -> Candidate:
    return Candidate(
        str(row.edit_id),
        edit_dir / str(row.shard),
        int(row.offset),
        int(row.size),
        str(row.class_name),
        str(row.attribute),
        str(row.feasibility),
        str(row.value),
        str(row.description or ""),
    )


def _read_answers(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return {row["edit_id"]: row for row in read_table(path).to_dict("records")}
    except (OSError, ValueError, KeyError):
        return {}  # absent or damaged: asked again


def _recorded_answers(samples: Mapping[str, Sample], keys: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The answers the edit stage's early stop wrote into its records (varireal.judge.early_stop) whose
    key is the one asked for now, by edit id."""
    return {
        e: {**sample.record["answers"], "edit_id": e}
        for e, sample in samples.items()
        if isinstance(sample.record.get("answers"), dict) and sample.record["answers"].get("key") == keys.get(e)
    }


def _filter_fields(row: Any, questions: list[str], record: dict[str, Any] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    expected = expected_answers(str(row.feasibility))
    for q, question, exp in zip(QUESTIONS, questions, expected):
        fields[f"{q}_question"], fields[f"{q}_expected"] = question, exp
        fields[f"{q}_p_yes"] = record.get(f"{q}_p_yes") if record else None
        fields[f"{q}_reply"] = record.get(f"{q}_reply") if record else None
        fields[f"{q}_answer"] = (record.get(f"{q}_answer") or "") if record else ""
    if record is None:
        # not_needed: the edit stage's early stop made no such candidate (its slot passed earlier)
        status = "not_needed" if row.status == "not_needed" else "not_edited"
        fields.update(filter_status=status, filter_reason=f"edit {row.status}: {row.reason}".rstrip(": "))
    else:
        fields.update(filter_status=record["status"], filter_reason=record["reason"] or "")
    # The key hashes the image: a synthetic shard is rewritten when an accepted image changes.
    fields["answer_key"] = record.get("key", "") if record else ""
    fields["score"] = answers_score(record, str(row.feasibility)) if record is not None else None
    return fields


def _judged(
    edits: pd.DataFrame,
    questions: dict[str, list[str]],
    answers: dict[str, dict],
    settings: FilterParams,
    vlm_info: dict,
) -> pd.DataFrame:
    """The edit manifest with the filter's columns; `shard`/`offset`/`size` still those of the edit shards."""
    rows = [
        _filter_fields(row, questions[row.edit_id], answers.get(row.edit_id) if row.status == "edited" else None)
        for row in edits.itertuples()
    ]
    manifest = pd.concat([edits.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    manifest["score"] = pd.to_numeric(manifest["score"]).astype(float)
    manifest["threshold"] = settings.threshold
    manifest["passed"] = manifest["score"].notna() & (manifest["score"] >= settings.threshold)
    accepted_by, _ = select_slots(manifest, settings.threshold, settings.accept_unfiltered_after)
    manifest["accepted"], manifest["accepted_by"] = accepted_by != "", accepted_by
    manifest["edit_shard"], manifest["edit_offset"], manifest["edit_size"] = (
        manifest["shard"],
        manifest["offset"],
        manifest["size"],
    )
    manifest["vlm"] = json.dumps(vlm_info, sort_keys=True)
    return manifest


def _write_accepted(images: dict[str, bytes], store: ShardStore, index: int, judged: pd.DataFrame) -> None:
    """Synthetic shard `index`: the accepted candidates of edit shard `index`, rewritten only when it changes."""
    accepted = judged[judged["accepted"]].drop(columns=["shard", "offset", "size"])
    records = json.loads(accepted.to_json(orient="records", double_precision=15)) if len(accepted) else []
    if store.records(index) == records:
        return
    store.write(index, [Sample(record["edit_id"], images[record["edit_id"]], record) for record in records])


def filter_set(
    edit_dir: str | Path,
    out_dir: str | Path,
    load_vlm: Callable[[], tuple[Any, Any]],
    settings: FilterParams,
    models_key: str,
    *,
    prefix: str = "",
    vlm_info: dict[str, Any] | None = None,
    ranks: Ranks = SINGLE,
    questions: Questions | None = None,
) -> pd.DataFrame | None:
    """Judge every edited candidate of edit_dir, pick one per slot, write out_dir; return its manifest.

    load_vlm: gives (processor, model), called once and only if something must be asked: a rerun
    whose answers are all recorded, or a set the edit stage judged (early stop), loads no model.
    vlm_info: what to record about it (repo, revision, fingerprint).
    questions: what is asked (questions.question_set); None: the settings' own templates, which
    `filter.questions: ours` means (`reference` needs the prompts document's, given here).
    With several ranks each judges whole edit shards r, r + N, ... and rank 0 writes the manifest
    from every shard's answers once all are done; the others return None.
    """
    edit_dir, out_dir = Path(edit_dir), Path(out_dir)
    edits = read_edit_manifest(edit_dir)
    edit_store, store = ShardStore(edit_dir, "edits"), ShardStore(out_dir, "synthetic")
    shard_names = sorted(set(edits["shard"]))
    if shard_names != [edit_store.name(i) for i in range(len(shard_names))]:
        raise ValueError(
            f"{edit_dir / 'manifest.parquet'}: shards {shard_names[:3]}... are not numbered 0..{len(shard_names) - 1}"
        )
    if questions is None and settings.questions != "ours":
        raise ValueError(
            f"filter.questions={settings.questions!r}: filter_set needs the reference's questions passed in"
        )
    asked = questions or Questions(settings.templates())
    questions = {row.edit_id: questions_for(_candidate(edit_dir, row), asked, prefix) for row in edits.itertuples()}
    judge = cache(lambda: YesNoJudge(*load_vlm()))
    judged: dict[int, pd.DataFrame] = {}  # this rank's shards; rank 0 reads the others' answers after the join
    for index in tqdm(ranks.mine(len(shard_names)), desc=ranks.label("filter"), unit="shard"):
        rows = edits[edits["shard"] == shard_names[index]]
        candidates = [_candidate(edit_dir, row) for row in rows.itertuples() if row.status == "edited"]
        samples = edit_store.samples(index)
        images = {key: sample.image or b"" for key, sample in samples.items()}
        keys = {
            c.edit_id: answer_key(images.get(c.edit_id, b""), questions[c.edit_id], settings, models_key)
            for c in candidates
        }
        path = _answers_path(out_dir, index)
        own = _read_answers(path)
        table = judge_shard(judge, candidates, keys, {**own, **_recorded_answers(samples, keys)}, questions, settings)
        done = {row["edit_id"]: row for row in table.to_dict("records")}
        if [(e, r.get("key")) for e, r in own.items()] != [(c.edit_id, keys[c.edit_id]) for c in candidates]:
            write_table(path, table)
        judged[index] = _judged(rows, questions, done, settings, vlm_info or {})
        _write_accepted(images, store, index, judged[index])  # the edit shard, read once
    if not ranks.join():
        return None
    parts = [
        judged[index]
        if index in judged
        else _judged(
            edits[edits["shard"] == name],
            questions,
            _read_answers(_answers_path(out_dir, index)),
            settings,
            vlm_info or {},
        )
        for index, name in enumerate(shard_names)
    ]
    _prune(out_dir, store, len(shard_names))
    return _write_manifest(out_dir, store, parts, edits.columns, settings)


def _answers_path(out_dir: Path, index: int) -> Path:
    return out_dir / "answers" / f"answers-{index:05d}.parquet"


def _prune(out_dir: Path, store: ShardStore, count: int) -> None:
    answers = out_dir / "answers"
    keep = {f"answers-{i:05d}.parquet" for i in range(count)}
    for path in sorted(answers.iterdir()) if answers.is_dir() else []:
        if path.name not in keep:
            path.unlink()
    store.prune(count, keep=("answers", "manifest.parquet", "slots.csv"))


def _write_manifest(
    out_dir: Path, store: ShardStore, parts: list[pd.DataFrame], edit_columns: Sequence[str], settings: FilterParams
) -> pd.DataFrame:
    manifest = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*edit_columns, *FILTER_COLUMNS])
    located = store.located(len(parts)).set_index("edit_id") if manifest["accepted"].any() else pd.DataFrame()
    for column in ("shard", "offset", "size"):
        manifest[column] = (
            [
                located.at[e, column] if a else (None if column == "shard" else -1)
                for e, a in zip(manifest["edit_id"], manifest["accepted"])
            ]
            if len(manifest)
            else []
        )
    manifest = manifest.sort_values("edit_id", kind="stable").reset_index(drop=True)[[*edit_columns, *FILTER_COLUMNS]]
    _, slots = select_slots(manifest, settings.threshold, settings.accept_unfiltered_after)
    write_table(out_dir / "slots.csv", slots)
    write_table(out_dir / "manifest.parquet", manifest)
    return manifest


def acceptance(out_dir: str | Path) -> dict[str, Any]:
    """The summary of a written out_dir (slots.csv + manifest.parquet), e.g. for reports."""
    from varireal.judge.rule import summarize

    out_dir = Path(out_dir)
    return summarize(read_table(out_dir / "slots.csv"), read_table(out_dir / "manifest.parquet"))


def accepted_edits(out_dir: str | Path) -> pd.DataFrame:
    """The rows training reads: accepted edits, `shard` relative to out_dir."""
    manifest = read_table(Path(out_dir) / "manifest.parquet")
    return manifest[manifest["accepted"].astype(bool)].reset_index(drop=True)
