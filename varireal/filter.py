"""The MLLM filter: a vision-language model answers four yes/no questions about each edit.

Per candidate edit: (1, 2) is the attribute value present (two phrasings), (3) is it possible
for this class, (4) could this image exist in reality. A feasible edit is expected to get
yes, yes, yes, yes; an infeasible one yes, yes, no, no. Score = fraction answered as expected.
Per slot (source image, slot) the best candidate with score >= threshold is accepted (ties:
the lowest candidate index); a slot without one is rejected and recorded as such.

Unlike the reference, the questions never carry the expected answer, nothing is accepted
by default after failed tries, and the answer is read from the model's own next-token
probabilities (mass on "yes" tokens vs "no" tokens), never parsed from free text.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import pandas as pd
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from varireal.io import ImageReadError, read_image_rgb, read_table, write_bytes, write_json, write_table

QUESTIONS = ("q1", "q2", "q3", "q4")
EXPECTED = {"feasible": ("yes", "yes", "yes", "yes"), "infeasible": ("yes", "yes", "no", "no")}
PLACEHOLDERS = frozenset({"class_name", "value", "attribute", "prefix"})
# Words that would tell the model what to answer (the reference's fault): never in a question.
LEAKING_WORDS = re.compile(r"feasib|expected|should answer|correct answer|the answer is", re.IGNORECASE)
EDIT_COLUMNS = [
    "edit_id", "path", "status", "reason", "source_id", "source_path", "class_name", "class_index",
    "attribute", "feasibility", "value", "description", "prompt", "seed", "slot", "candidate",
    "mask_id", "settings", "models",
]
QUESTION_COLUMNS = [f"{q}_{part}" for q in QUESTIONS for part in ("question", "expected", "p_yes", "answer")]
FILTER_COLUMNS = [
    *QUESTION_COLUMNS, "filter_status", "filter_reason", "score", "threshold", "passed", "accepted", "edit_path", "vlm",
]
SLOT_COLUMNS = ["source_id", "slot", "status", "edit_id", "best_score", "candidates", "reason"]


class FilterParams(BaseModel):
    """The `filter` section of params.yaml (one block per profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Literal["auto", "cpu", "cuda"]
    batch_size: int = Field(gt=0, description="candidate edits per forward pass (4 prompts each)")
    threshold: float = Field(ge=0, le=1, description="keep an edit whose score (fraction as expected) reaches this")
    attribute_present: str = Field(description="q1: is the value present; {value} and {attribute} are filled in")
    attribute_present_rephrased: str = Field(description="q2: the same, phrased differently")
    possible_for_class: str = Field(description="q3: could a {class_name} have this {attribute} value")
    exists_in_reality: str = Field(description="q4: could this image exist in reality")
    answer_instruction: str = Field(description="appended to every question, e.g. 'Answer yes or no.'")

    @field_validator("attribute_present", "attribute_present_rephrased", "possible_for_class", "exists_in_reality")
    @classmethod
    def _question_template(cls, template: str) -> str:
        check_template(template)
        return template

    @field_validator("answer_instruction")
    @classmethod
    def _instruction(cls, text: str) -> str:
        if not re.search(r"\byes\b", text, re.IGNORECASE) or not re.search(r"\bno\b", text, re.IGNORECASE):
            raise ValueError(
                f"answer_instruction={text!r}: must ask for 'yes' or 'no' (the answer is read from those tokens)"
            )
        if LEAKING_WORDS.search(text):
            raise ValueError(f"answer_instruction={text!r}: must not hint at the expected answer")
        return text

    def templates(self) -> tuple[str, str, str, str]:
        return (
            self.attribute_present, self.attribute_present_rephrased, self.possible_for_class, self.exists_in_reality
        )


def check_template(template: str) -> None:
    """A question template may use only the known placeholders and must not hint at the answer."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"question template {template!r}: not a valid format string ({err})") from err
    unknown = names - PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"question template {template!r}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}"
        )
    if LEAKING_WORDS.search(template):
        raise ValueError(
            f"question template {template!r}: mentions feasibility or the expected answer "
            f"(matches {LEAKING_WORDS.pattern!r}); ask the question neutrally"
        )
    if not template.strip().endswith("?"):
        raise ValueError(f"question template {template!r}: a yes/no question ends with '?'")


# --- questions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One edited image to judge, with what its questions are filled with."""

    edit_id: str
    image_path: Path
    class_name: str
    attribute: str
    feasibility: str
    value: str


def questions_for(candidate: Candidate, templates: Sequence[str], prefix: str) -> list[str]:
    """The four questions with the edit's class, value and attribute filled in (single-spaced)."""
    fields = {
        "class_name": candidate.class_name, "value": candidate.value, "attribute": candidate.attribute, "prefix": prefix,
    }
    questions = [" ".join(template.format(**fields).split()) for template in templates]
    for question in questions:
        # A value or class name could still carry the word in: the question would give the answer away.
        if LEAKING_WORDS.search(question):
            raise ValueError(
                f"edit {candidate.edit_id}: question {question!r} names the feasibility or the expected answer; "
                "change the value list or the question template"
            )
    return questions


def expected_answers(feasibility: str) -> tuple[str, str, str, str]:
    if feasibility not in EXPECTED:
        raise ValueError(f"feasibility={feasibility!r}: the filter judges 'feasible' or 'infeasible' edits")
    return EXPECTED[feasibility]


def chat_prompt(processor: Any, question: str, instruction: str) -> str:
    """One image and the question, in the model's own chat template, ready for the assistant's answer."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"{question} {instruction}"}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


# --- yes/no from next-token probabilities --------------------------------------------------------


def answer_token_ids(tokenizer: Any, word: str) -> list[int]:
    """Every non-special token that is `word` in any case, with or without a leading space ('yes', ' Yes', ...)."""
    special = set(tokenizer.all_special_ids)
    ids = sorted(i for i in tokenizer.get_vocab().values() if i not in special)
    texts = tokenizer.batch_decode([[i] for i in ids])
    found = [i for i, text in zip(ids, texts) if text.strip().lower() == word]
    if not found:
        raise ValueError(f"the VLM's tokenizer has no single token for {word!r}; its answers cannot be read")
    return found


class YesNoJudge:
    """Reads p(yes) = mass(yes tokens) / (mass(yes) + mass(no)) at the answer position."""

    def __init__(self, processor: Any, model: Any) -> None:
        self.processor, self.model = processor, model
        tokenizer = processor.tokenizer
        self.yes_ids = torch.tensor(answer_token_ids(tokenizer, "yes"))
        self.no_ids = torch.tensor(answer_token_ids(tokenizer, "no"))
        # A template that writes the BOS itself must not get a second one from the tokenizer.
        self.bos = tokenizer.bos_token or ""

    def p_yes(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        """p(yes) per (image, prompt) pair, in one left-padded forward pass."""
        add_special = not (self.bos and all(p.startswith(self.bos) for p in prompts))
        inputs = self.processor(
            images=list(images), text=list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special
        ).to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        # Positions count real tokens only, as generate() does with left padding.
        position_ids = (inputs["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(**inputs, position_ids=position_ids, logits_to_keep=1, use_cache=False).logits[:, -1, :]
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
        log_yes = torch.logsumexp(log_probs[:, self.yes_ids], dim=-1)
        log_no = torch.logsumexp(log_probs[:, self.no_ids], dim=-1)
        return torch.sigmoid(log_yes - log_no).tolist()


def answer(p_yes: float) -> str:
    return "yes" if p_yes >= 0.5 else "no"


def score(answers: Sequence[str], expected: Sequence[str]) -> float:
    """Fraction of the answers equal to the expected ones."""
    if len(answers) != len(expected):
        raise ValueError(f"{len(answers)} answers for {len(expected)} questions")
    return sum(a == e for a, e in zip(answers, expected)) / len(expected)


# --- records and resume --------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def item_key(candidate: Candidate, questions: Sequence[str], settings: FilterParams, models_key: str) -> str:
    """What a candidate's answers depend on; a record with another key is redone on resume.

    The threshold is left out: changing it re-selects from the recorded answers without rescoring.
    """
    try:
        image = file_sha256(candidate.image_path)
    except OSError:
        image = "missing"
    parts = {
        "edit_id": candidate.edit_id,
        "image": image,
        "questions": list(questions),
        "instruction": settings.answer_instruction,
        "batch_size": settings.batch_size,
        "models": models_key,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class FilterStore:
    """One JSON record per judged candidate under out_dir/records/."""

    def __init__(self, out_dir: Path) -> None:
        self.record_dir = out_dir / "records"

    def record_path(self, edit_id: str) -> Path:
        return self.record_dir / f"{edit_id}.json"

    def read(self, edit_id: str) -> dict[str, Any] | None:
        path = self.record_path(edit_id)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def finished(self, edit_id: str, key: str) -> bool:
        record = self.read(edit_id)
        return record is not None and record.get("key") == key

    def save(self, record: dict[str, Any]) -> None:
        write_json(self.record_path(record["edit_id"]), record)

    def prune(self, keep_ids: set[str]) -> None:
        """Drop records of candidates no longer in the edit manifest (the out dir persists)."""
        for path in sorted(self.record_dir.glob("*.json")) if self.record_dir.exists() else []:
            if path.stem not in keep_ids:
                path.unlink()


def judge_batch(
    judge: YesNoJudge, candidates: Sequence[Candidate], questions: dict[str, list[str]], instruction: str
) -> list[dict[str, Any]]:
    """Records for one batch: p(yes) and the answer per question; an unreadable image gets its reason."""
    records: dict[str, dict[str, Any]] = {}
    images: list[Image.Image] = []
    prompts: list[str] = []
    readable: list[Candidate] = []
    for candidate in candidates:
        try:
            image = read_image_rgb(candidate.image_path)
        except (ImageReadError, OSError) as err:
            records[candidate.edit_id] = {"edit_id": candidate.edit_id, "status": "unreadable", "reason": str(err)}
            continue
        readable.append(candidate)
        for question in questions[candidate.edit_id]:
            images.append(image)
            prompts.append(chat_prompt(judge.processor, question, instruction))
    p_yes = judge.p_yes(images, prompts) if prompts else []
    for index, candidate in enumerate(readable):
        probs = p_yes[index * len(QUESTIONS) : (index + 1) * len(QUESTIONS)]
        record = {"edit_id": candidate.edit_id, "status": "scored", "reason": ""}
        for q, prob in zip(QUESTIONS, probs):
            record[f"{q}_p_yes"] = round(float(prob), 6)
            record[f"{q}_answer"] = answer(record[f"{q}_p_yes"])  # the answer agrees with the recorded number
        records[candidate.edit_id] = record
    return [records[c.edit_id] for c in candidates]


# --- selection -----------------------------------------------------------------------------------


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
                      "best_score": row[2], "candidates": len(group), "reason": row[3]})
    return accepted, pd.DataFrame(slots, columns=SLOT_COLUMNS)


def summarize(slots: pd.DataFrame, manifest: pd.DataFrame) -> dict[str, Any]:
    """Acceptance numbers for DVC metrics."""
    accepted = int((slots["status"] == "accepted").sum())
    scores = manifest["score"].dropna()
    return {
        "slots": len(slots),
        "accepted": accepted,
        "acceptance_rate": round(accepted / len(slots), 4) if len(slots) else 0.0,
        "candidates": len(manifest),
        "scored": int((manifest["filter_status"] == "scored").sum()),
        "unreadable": int((manifest["filter_status"] == "unreadable").sum()),
        "passed": int(manifest["passed"].sum()),
        "mean_score": round(float(scores.mean()), 4) if len(scores) else 0.0,
    }


# --- the whole filter ----------------------------------------------------------------------------


def read_edit_manifest(edit_dir: Path) -> pd.DataFrame:
    path = edit_dir / "manifest.csv"
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
    unknown = sorted(set(edits["status"]) - {"edited", "skipped"})
    if unknown:
        raise ValueError(f"{path}: status must be 'edited' or 'skipped'; found {unknown}")
    edits["edit_id"] = edits["edit_id"].astype(str)
    edits["reason"] = edits["reason"].fillna("")
    return edits.sort_values("edit_id", kind="stable").reset_index(drop=True)


def _candidate(edit_dir: Path, row: Any) -> Candidate:
    return Candidate(str(row.edit_id), edit_dir / str(row.path), str(row.class_name), str(row.attribute),
                     str(row.feasibility), str(row.value))


def _filter_fields(row: Any, questions: list[str], record: dict[str, Any] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    expected = expected_answers(str(row.feasibility))
    for q, question, exp in zip(QUESTIONS, questions, expected):
        fields[f"{q}_question"], fields[f"{q}_expected"] = question, exp
        fields[f"{q}_p_yes"] = record.get(f"{q}_p_yes") if record else None
        fields[f"{q}_answer"] = record.get(f"{q}_answer", "") if record else ""
    if record is None:
        fields.update(filter_status="not_edited", filter_reason=f"edit {row.status}: {row.reason}".rstrip(": "))
    else:
        fields.update(filter_status=record["status"], filter_reason=record["reason"])
    scored = record is not None and record["status"] == "scored"
    fields["score"] = score([fields[f"{q}_answer"] for q in QUESTIONS], expected) if scored else None
    return fields


def _copy_accepted(edit_dir: Path, out_dir: Path, manifest: pd.DataFrame) -> None:
    """Accepted edits' bytes into out_dir/images/; images of edits no longer accepted are removed."""
    image_dir = out_dir / "images"
    keep = set(manifest.loc[manifest["accepted"], "path"])
    for row in manifest[manifest["accepted"]].itertuples():
        source, target = edit_dir / row.edit_path, out_dir / row.path
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            write_bytes(target, data)
    for path in sorted(image_dir.iterdir()) if image_dir.exists() else []:
        if path.relative_to(out_dir).as_posix() not in keep:
            path.unlink()


def filter_set(
    edit_dir: str | Path,
    out_dir: str | Path,
    vlm: tuple[Any, Any],
    settings: FilterParams,
    models_key: str,
    *,
    prefix: str = "",
    vlm_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Judge every edited candidate of edit_dir, pick one per slot, write out_dir; return its manifest.

    vlm: (processor, model) loaded once by the caller. vlm_info: what to record about it
    (repo, revision, fingerprint). Batches are fixed slices of the candidates sorted by edit id,
    so a resumed run groups them exactly as an uninterrupted one and writes the same bytes.
    """
    edit_dir, out_dir = Path(edit_dir), Path(out_dir)
    edits = read_edit_manifest(edit_dir)
    templates = settings.templates()
    questions = {row.edit_id: questions_for(_candidate(edit_dir, row), templates, prefix) for row in edits.itertuples()}
    candidates = [_candidate(edit_dir, row) for row in edits.itertuples() if row.status == "edited"]
    keys = {c.edit_id: item_key(c, questions[c.edit_id], settings, models_key) for c in candidates}
    store = FilterStore(out_dir)
    batches = [candidates[i : i + settings.batch_size] for i in range(0, len(candidates), settings.batch_size)]
    todo = [batch for batch in batches if not all(store.finished(c.edit_id, keys[c.edit_id]) for c in batch)]
    if todo:
        judge = YesNoJudge(*vlm)
        done = len(candidates) - sum(map(len, todo))
        with tqdm(total=len(candidates), initial=done, desc="filter", unit="edit") as progress:
            for batch in todo:
                for record in judge_batch(judge, batch, questions, settings.answer_instruction):
                    store.save({**record, "key": keys[record["edit_id"]]})
                progress.update(len(batch))
    store.prune(set(keys))
    manifest = _build_manifest(edits, questions, store, settings, vlm_info or {})
    _copy_accepted(edit_dir, out_dir, manifest)
    _, slots = select_slots(manifest, settings.threshold)
    write_table(out_dir / "slots.csv", slots)
    write_table(out_dir / "manifest.csv", manifest)
    return manifest


def _build_manifest(
    edits: pd.DataFrame, questions: dict[str, list[str]], store: FilterStore, settings: FilterParams, vlm_info: dict
) -> pd.DataFrame:
    rows = []
    for row in edits.itertuples():
        record = store.read(row.edit_id) if row.status == "edited" else None
        rows.append(_filter_fields(row, questions[row.edit_id], record))
    manifest = pd.concat([edits.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    manifest["score"] = pd.to_numeric(manifest["score"]).astype(float)
    manifest["threshold"] = settings.threshold
    manifest["passed"] = manifest["score"].notna() & (manifest["score"] >= settings.threshold)
    accepted, _ = select_slots(manifest, settings.threshold)
    manifest["accepted"] = accepted
    manifest["edit_path"] = manifest["path"]
    manifest["path"] = [f"images/{e}{Path(p).suffix}" if a else "" for e, p, a in
                        zip(manifest["edit_id"], manifest["edit_path"], manifest["accepted"])]
    manifest["vlm"] = json.dumps(vlm_info, sort_keys=True)
    # The edit stage's columns in its own order (it may add some, e.g. negative_prompt), then the filter's.
    return manifest[[*edits.columns, *FILTER_COLUMNS]]


def acceptance(out_dir: str | Path) -> dict[str, Any]:
    """The summary of a written out_dir (slots.csv + manifest.csv), e.g. for reports."""
    out_dir = Path(out_dir)
    return summarize(read_table(out_dir / "slots.csv"), read_table(out_dir / "manifest.csv"))


def accepted_edits(out_dir: str | Path) -> pd.DataFrame:
    """The rows training reads: accepted edits, `path` relative to out_dir."""
    manifest = read_table(Path(out_dir) / "manifest.csv")
    return manifest[manifest["accepted"].astype(bool)].reset_index(drop=True)
