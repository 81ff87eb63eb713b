"""Yes/no answers read from a vision-language model's own next-token probabilities, never parsed from text."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from PIL import Image

from varireal.filter.questions import QUESTIONS, Candidate, chat_prompt, expected_answers
from varireal.io import ImageReadError, read_image_rgb
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


def answers_score(answers: Mapping[str, Any], feasibility: str) -> float | None:
    """The score of one candidate's answer row (judge_batch's record); None unless it was scored."""
    if answers.get("status") != "scored":
        return None
    return score([answers[f"{q}_answer"] for q in QUESTIONS], expected_answers(feasibility))


def judge_batch(
    judge: YesNoJudge, candidates: Sequence[Candidate], questions: dict[str, list[str]], instruction: str,
    images_in_memory: Mapping[str, bytes] | None = None,
) -> list[dict[str, Any]]:
    """Records for one batch: p(yes) and the answer per question; an unreadable image gets its reason.

    Each image is read from its shard, or taken from `images_in_memory` (edit id -> PNG bytes) when given.
    """
    records: dict[str, dict[str, Any]] = {}
    images: list[Image.Image] = []
    prompts: list[str] = []
    readable: list[Candidate] = []
    for candidate in candidates:
        try:
            data = (images_in_memory[candidate.edit_id] if images_in_memory is not None
                    else read_member(candidate.shard, candidate.offset, candidate.size))
            image = read_image_rgb(f"{candidate.shard}:{candidate.edit_id}.png", data=data)
        except (ImageReadError, OSError, ValueError) as err:
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


