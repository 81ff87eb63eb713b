"""Yes/no answers from a vision-language model: read from its next-token probabilities
(`answer_from: yes_no_probability`), or parsed from a greedy reply as the reference did
(`answer_from: generated_text`; a reply that is neither yes nor no answers nothing)."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from varireal.images import ImageReadError, read_image_rgb
from varireal.judge.questions import QUESTIONS, Candidate, FilterParams, expected_answers, filter_prompt
from varireal.shards import read_member


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

    def _inputs(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> Any:
        add_special = not (self.bos and all(p.startswith(self.bos) for p in prompts))
        inputs = self.processor(
            images=list(images), text=list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special
        ).to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def replies(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """The greedy reply per (image, prompt) pair, special tokens dropped, in one left-padded batch.

        Greedy: the reference passed temperature=0.2 without do_sample (vlm_filter/vlm/llava.py:58)."""
        inputs = self._inputs(images, prompts)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def p_yes(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        """p(yes) per (image, prompt) pair, in one left-padded forward pass."""
        inputs = self._inputs(images, prompts)
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


# Where the reference cut a reply: before the first of these (vlm_filter/vqa_models.py:101).
REPLY_ENDS = (
    "Answer the",
    "Please answer the following",
    "Answer the multiple-choice question",
    "Answer:",
    "USER:",
    "Explanation:",
    "Question:",
)


def reply_answer(reply: str) -> str:
    """'yes' or 'no' as the reference read a reply (vqa_models.py:100-116), else '' (it asked a sentence
    encoder for the nearer of the two; we leave such a reply unanswered, so it never matches)."""
    ends = [reply.find(marker) for marker in REPLY_ENDS if marker in reply]
    if ends:
        head = reply[: min(ends)]
    else:
        parts = re.split("\n|,", reply)
        head = parts[0] if len(parts) >= 2 else reply
    word = head.lower().strip(string.punctuation + string.whitespace)
    return word if word in ("yes", "no") else ""


def score(answers: Sequence[str], expected: Sequence[str]) -> float:
    """Fraction of the answers equal to the expected ones."""
    if len(answers) != len(expected):
        raise ValueError(f"{len(answers)} answers for {len(expected)} questions")
    return sum(a == e for a, e in zip(answers, expected)) / len(expected)


def answers_score(answers: Mapping[str, Any], feasibility: str) -> float | None:
    """The score of one candidate's answer row (judge_batch's record); None unless it was scored."""
    if answers.get("status") != "scored":
        return None
    return score([answers[f"{q}_answer"] for q in QUESTIONS], expected_answers(feasibility))


class DamagedCandidate(ValueError):
    """A candidate the edit stage recorded whose image cannot be read back: the set on disk is damaged."""

    def __init__(self, shard: str | Path, edit_id: str, err: Exception) -> None:
        edit_set = Path(shard).parent.parent
        super().__init__(
            f"{shard}: {edit_id}.png, recorded by the edit stage, cannot be read ({err}). The edit set "
            f"{edit_set} is damaged: `dvc checkout {edit_set}` restores it from the cache, `dvc pull` from a "
            "verifying remote, or `dvc repro --force` on its edit stage makes it again"
        )


def judge_batch(
    judge: YesNoJudge,
    candidates: Sequence[Candidate],
    questions: dict[str, list[str]],
    settings: FilterParams,
    images_in_memory: Mapping[str, bytes] | None = None,
) -> list[dict[str, Any]]:
    """Records for one batch: the answer per question (with its p(yes) or the reply it was read from).

    Each image is read from its shard, or taken from `images_in_memory` (edit id -> PNG bytes) when given.
    An image the edit stage recorded but that cannot be read is a damaged set (DamagedCandidate), never
    a rejected row: dropping it would quietly change the training set.
    """
    records: dict[str, dict[str, Any]] = {}
    images: list[Image.Image] = []
    prompts: list[str] = []
    readable: list[Candidate] = []
    for candidate in candidates:
        try:
            data = (
                images_in_memory[candidate.edit_id]
                if images_in_memory is not None
                else read_member(candidate.shard, candidate.offset, candidate.size)
            )
            image = read_image_rgb(f"{candidate.shard}:{candidate.edit_id}.png", data=data)
        except (ImageReadError, OSError, ValueError) as err:
            raise DamagedCandidate(candidate.shard, candidate.edit_id, err) from err
        readable.append(candidate)
        for question, expected in zip(questions[candidate.edit_id], expected_answers(candidate.feasibility)):
            images.append(image)
            prompts.append(filter_prompt(judge.processor, question, expected, settings))
    answers = _answers(judge, images, prompts, settings) if prompts else []
    for index, candidate in enumerate(readable):
        record = {"edit_id": candidate.edit_id, "status": "scored", "reason": ""}
        for q, fields in zip(QUESTIONS, answers[index * len(QUESTIONS) : (index + 1) * len(QUESTIONS)]):
            record.update({f"{q}_{name}": value for name, value in fields.items()})
        records[candidate.edit_id] = record
    return [records[c.edit_id] for c in candidates]


def _answers(
    judge: YesNoJudge, images: list[Image.Image], prompts: list[str], settings: FilterParams
) -> list[dict[str, Any]]:
    """Per prompt: p_yes, reply and answer (the answer agrees with the recorded number or text)."""
    if settings.answer_from == "generated_text":
        replies = judge.replies(images, prompts, settings.max_new_tokens)
        return [{"p_yes": None, "reply": reply, "answer": reply_answer(reply)} for reply in replies]
    rounded = [round(float(p), 6) for p in judge.p_yes(images, prompts)]
    return [{"p_yes": p, "reply": None, "answer": answer(p)} for p in rounded]
