"""The classifier of the study: CLIP with LoRA, scoring images against one prompt per class.

logits[i, c] = exp(logit_scale) * cos(image_embedding(image_i), text_embedding(prompt_c)),
prompt_c = template.format(prefix=<dataset prefix>, class_name=<class c>), e.g. the paper's
"a pet photo of a Abyssinian" (an empty prefix leaves no double space). The text tower carries
LoRA too, so in training the class embeddings are recomputed every step; in eval mode they are
computed once and cached.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from varireal.finetune.lora import apply_lora, tower_of
from varireal.models.clip import load_clip
from varireal.settings.train import Activation, LoraParams

PROMPT_FIELDS = frozenset({"prefix", "class_name"})


def class_prompts(class_names: Sequence[str], template: str, prefix: str) -> list[str]:
    """One prompt per class; runs of spaces (an empty prefix) collapse to one."""
    fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    if "class_name" not in fields or not fields <= PROMPT_FIELDS:
        raise ValueError(
            f"prompt template {template!r} uses fields {sorted(fields)}; it must contain {{class_name}} "
            "and may contain {prefix}, nothing else (e.g. 'a photo of a {prefix} {class_name}.')"
        )
    if not class_names or len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be a non-empty list of distinct names, got {list(class_names)[:5]}...")
    return [" ".join(template.format(prefix=prefix, class_name=name).split()) for name in class_names]


def _square_size(size: Any) -> int:
    sizes = {int(s) for s in size} if isinstance(size, (list, tuple)) else {int(size)}
    if len(sizes) != 1:
        raise ValueError(f"the model's preprocess size {size} is not square; the classifier expects square inputs")
    return sizes.pop()


class ClipClassifier(nn.Module):
    """An open_clip CLIP (usually with LoRA) turned into a classifier over fixed class prompts.

    forward(images: float (N, 3, image_size, image_size), normalized with mean/std) -> logits (N, C).
    """

    def __init__(
        self,
        clip: nn.Module,
        tokenizer: Any,
        class_names: Sequence[str],
        prompts: Sequence[str],
        preprocess_cfg: dict,
    ) -> None:
        super().__init__()
        if len(prompts) != len(class_names):
            raise ValueError(f"{len(prompts)} prompts for {len(class_names)} classes")
        self.clip = clip
        self.class_names = list(class_names)
        self.prompts = list(prompts)
        self.preprocess_cfg = dict(preprocess_cfg)
        self.image_size = _square_size(preprocess_cfg["size"])
        self.mean = tuple(float(m) for m in preprocess_cfg["mean"])
        self.std = tuple(float(s) for s in preprocess_cfg["std"])
        device = next(clip.parameters()).device
        # Not saved in state_dict: the tokens follow from class names + template, which the run records.
        self.register_buffer("tokens", tokenizer(self.prompts).to(device), persistent=False)
        self._class_embeddings: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def train(self, mode: bool = True) -> ClipClassifier:
        self._class_embeddings = None  # the text tower may change (training, a loaded adapter)
        return super().train(mode)

    def _text_trains(self) -> bool:
        return self.training and any(p.requires_grad for n, p in self.clip.named_parameters() if tower_of(n) == "text")

    def encode_classes(self) -> torch.Tensor:
        """Normalized class text embeddings (C, embed_dim), recomputed on every call."""
        return F.normalize(self.clip.encode_text(self.tokens), dim=-1)

    def class_embeddings(self) -> torch.Tensor:
        """encode_classes(), cached unless the text tower is being trained."""
        if self._text_trains():
            self._class_embeddings = None
            return self.encode_classes()
        if self._class_embeddings is None:
            with torch.no_grad():
                self._class_embeddings = self.encode_classes()
        return self._class_embeddings

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = F.normalize(self.clip.encode_image(images), dim=-1)
        text = self.class_embeddings().to(image.dtype)
        logits = self.clip.logit_scale.exp() * image @ text.T
        bias = getattr(self.clip, "logit_bias", None)  # SigLIP-style models; None for CLIP
        return logits if bias is None else logits + bias


def build_classifier(
    model_dir: str | Path,
    class_names: Sequence[str],
    template: str,
    prefix: str,
    lora: LoraParams,
    device: str,
    *,
    seed: int,
    activation: Activation = "quick_gelu",
) -> ClipClassifier:
    """Load the `clip` role from model_dir, add LoRA (A matrices drawn from `seed`), wrap as a classifier.

    Only the LoRA weights require grad. The model is fp32 on `device`, in train mode.
    activation: quick_gelu forces OpenAI's QuickGELU, the reference's (varireal.settings.train.Activation).
    """
    clip, preprocess_cfg, tokenizer = load_clip(model_dir, device, quick_gelu=activation == "quick_gelu")
    apply_lora(clip, lora, seed=seed)
    clip.to(device)  # peft creates the LoRA layers on the base layer's device; this makes sure
    prompts = class_prompts(class_names, template, prefix)
    return ClipClassifier(clip, tokenizer, class_names, prompts, preprocess_cfg).train()
