"""LoRA on open_clip CLIP: split the fused attention projections, then let peft wrap q and v.

open_clip's attention blocks use nn.MultiheadAttention, whose query, key and value projections
live in one fused `in_proj_weight`. LoRA on "the query and value projections" (the paper) needs
them as separate nn.Linear layers, so `split_attention` swaps each block's attention for a
numerically equivalent `SplitAttention` (weights copied exactly), and `apply_lora` then injects
peft LoRA layers into the named projections of the chosen towers and freezes everything else.

The adapter file (`save_adapter`) holds only the LoRA tensors, as safetensors, with the LoRA
settings in its metadata; `load_adapter` refuses a file made for other settings or modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from varireal.io import write_bytes
from varireal.seeding import item_seed
from varireal.settings.train import LoraParams

# First component of a module name in open_clip's CLIP (text tower flat on the model) and
# CustomTextCLIP (text tower under `text`).
TOWER_ROOTS: dict[str, tuple[str, ...]] = {"image": ("visual",), "text": ("transformer", "text")}
LORA_KEY = "lora_"  # peft names every LoRA tensor lora_A / lora_B / lora_embedding_...
METADATA_KEY = "varireal.lora"


class AdapterError(ValueError):
    """An adapter file that is unreadable or does not fit the model; the message names the file."""


# --- split attention ------------------------------------------------------------------------------


class SplitAttention(nn.Module):
    """Multi-head attention with q/k/v/out as four nn.Linear layers: LoRA can target each one.

    Called like nn.MultiheadAttention (query, key, value, attn_mask=..., need_weights=False) and
    returns (output, None), so open_clip's ResidualAttentionBlock uses it unchanged.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, dropout: float = 0.0, batch_first: bool = True) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> SplitAttention:
        """The same attention as `mha`, its fused in_proj cut into q, k and v (exact copies)."""
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(
                "only self-attention nn.MultiheadAttention with a fused, biased in_proj (open_clip's "
                "ResidualAttentionBlock) can be split; this one has kdim/vdim, add_bias_kv or add_zero_attn"
            )
        split = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout, batch_first=mha.batch_first)
        split.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        weights = mha.in_proj_weight.detach().chunk(3)
        biases = mha.in_proj_bias.detach().chunk(3)
        with torch.no_grad():
            for linear, weight, bias in zip((split.q_proj, split.k_proj, split.v_proj), weights, biases):
                linear.weight.copy_(weight)
                linear.bias.copy_(bias)
            split.out_proj.weight.copy_(mha.out_proj.weight)
            split.out_proj.bias.copy_(mha.out_proj.bias)
        split.train(mha.training)
        return split

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, None]:
        if need_weights:
            raise ValueError("SplitAttention does not return attention weights; call it with need_weights=False")
        key = query if key is None else key
        value = key if value is None else value
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        batch, length, _ = query.shape
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        mask = self._additive_mask(attn_mask, key_padding_mask, batch, length, k.shape[2], q.dtype)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal and mask is None,
        )
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.embed_dim))
        return (out if self.batch_first else out.transpose(0, 1)), None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, E) -> (N, heads, L, head_dim)."""
        return x.view(x.shape[0], x.shape[1], self.num_heads, -1).transpose(1, 2)

    def _additive_mask(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        batch: int,
        length: int,
        source: int,
        dtype: torch.dtype,
    ) -> torch.Tensor | None:
        """nn.MultiheadAttention's masks (bool True = blocked, float = added) as one float mask for SDPA.

        SDPA reads a bool mask the other way round (True = may attend), so bools become -inf here.
        """
        mask = None
        if attn_mask is not None:
            mask = _as_additive(attn_mask, dtype)
            if mask.dim() == 3:  # (N * heads, L, S) -> (N, heads, L, S)
                mask = mask.view(batch, self.num_heads, length, source)
        if key_padding_mask is not None:
            padding = _as_additive(key_padding_mask, dtype).view(batch, 1, 1, source)
            mask = padding if mask is None else mask + padding
        return mask


def _as_additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def tower_of(module_name: str) -> str | None:
    """'image' or 'text' for a module name of an open_clip CLIP, None for shared parts (logit_scale)."""
    root = module_name.split(".", 1)[0]
    return next((tower for tower, roots in TOWER_ROOTS.items() if root in roots), None)


def split_attention(model: nn.Module, towers: tuple[str, ...] = ("image", "text")) -> list[str]:
    """Replace every ResidualAttentionBlock's nn.MultiheadAttention in `towers` by SplitAttention.

    Returns the names of the replaced modules. Raises if a tower has no such block (e.g. a timm
    or Hugging Face tower), since LoRA would then silently adapt nothing there.
    """
    from open_clip.transformer import ResidualAttentionBlock

    replaced: list[str] = []
    for name, block in list(model.named_modules()):
        if isinstance(block, ResidualAttentionBlock) and tower_of(name) in towers:
            if isinstance(block.attn, nn.MultiheadAttention):
                block.attn = SplitAttention.from_multihead(block.attn)
            if isinstance(block.attn, SplitAttention):
                replaced.append(f"{name}.attn")
    for tower in towers:
        if not any(tower_of(name) == tower for name in replaced):
            raise ValueError(
                f"the {tower} tower of {type(model).__name__} has no open_clip ResidualAttentionBlock "
                "with nn.MultiheadAttention: LoRA on its attention projections is not supported"
            )
    return replaced


# --- LoRA -----------------------------------------------------------------------------------------


def lora_target_names(model: nn.Module, params: LoraParams) -> list[str]:
    """Full names of the nn.Linear layers LoRA adapts: params.target_modules inside blocks of params.towers."""
    from open_clip.transformer import ResidualAttentionBlock

    blocks = [name for name, m in model.named_modules() if isinstance(m, ResidualAttentionBlock)]
    names = []
    for name, module in model.named_modules():
        in_block = any(name.startswith(block + ".") for block in blocks)
        if (
            isinstance(module, nn.Linear)
            and in_block
            and name.rsplit(".", 1)[-1] in params.target_modules
            and tower_of(name) in params.towers
        ):
            names.append(name)
    return names


def apply_lora(model: nn.Module, params: LoraParams, *, seed: int) -> nn.Module:
    """Split attention, inject peft LoRA into the targeted layers, freeze all but the LoRA weights.

    Modifies `model` in place and returns it. The LoRA A matrices are drawn from `seed` (B starts
    at zero, so the adapted model first computes exactly what the base model did).
    """
    from peft import LoraConfig, inject_adapter_in_model

    if any(isinstance(getattr(m, "lora_params", None), LoraParams) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} already has LoRA; apply it once, to a freshly loaded model")
    split_attention(model, params.towers)
    targets = lora_target_names(model, params)
    missing = [t for t in params.target_modules if not any(n.rsplit(".", 1)[-1] == t for n in targets)]
    if missing:
        raise ValueError(f"LoRA target_modules {missing} match no Linear layer in the {list(params.towers)} tower(s)")
    config = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=targets,  # full names: only these layers, never a same-named layer elsewhere
        bias="none",
    )
    with torch.random.fork_rng(devices=[]):
        # the seed's name, not the module's: it was finetune.lora when the first adapters were made,
        # and a new name would give every run a new LoRA initialisation
        torch.manual_seed(item_seed("finetune.lora", seed))
        inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(LORA_KEY in name)
    model.lora_params = params  # read back by save_adapter / load_adapter (as peft keeps peft_config)
    return model


def lora_params_of(model: nn.Module) -> LoraParams:
    """The LoraParams that apply_lora recorded on `model` or one of its submodules."""
    for module in model.modules():
        params = getattr(module, "lora_params", None)
        if isinstance(params, LoraParams):
            return params
    raise ValueError(f"{type(model).__name__} has no LoRA: build it with apply_lora (or build_classifier) first")


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors of `model`, by their names in `model`."""
    return {name: tensor for name, tensor in model.state_dict().items() if LORA_KEY in name}


def save_adapter(model: nn.Module, path: str | Path) -> Path:
    """Write the LoRA weights (only) to a .safetensors file, with the LoRA settings as metadata.

    Keys are names inside `model`: load the file into the same kind of module (both a
    ClipClassifier, or both a bare open_clip model).
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: an adapter is saved as a .safetensors file")
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in lora_state_dict(model).items()}
    if not tensors:
        raise ValueError(f"{type(model).__name__} has no LoRA tensors to save to {path}")
    # One metadata key only: safetensors writes the metadata map in hash order, which changes
    # from process to process, so two keys would give different bytes for the same adapter.
    metadata = {METADATA_KEY: lora_params_of(model).model_dump_json()}
    write_bytes(path, save(tensors, metadata=metadata))
    return path


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], LoraParams]:
    """(tensors, LoRA settings) of an adapter file; AdapterError if it is not one."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix != ".safetensors":
        raise AdapterError(f"{path}: adapters are read from .safetensors files only (no pickles)")
    if not path.is_file():
        raise AdapterError(f"{path}: adapter file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as err:  # safetensors raises its own SafetensorError, and OSError/ValueError
        raise AdapterError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err
    if METADATA_KEY not in metadata:
        raise AdapterError(f"{path}: no '{METADATA_KEY}' metadata: not an adapter written by save_adapter")
    try:
        params = LoraParams.model_validate(json.loads(metadata[METADATA_KEY]))
    except ValueError as err:
        raise AdapterError(f"{path}: its '{METADATA_KEY}' metadata is not valid LoRA settings: {err}") from err
    return tensors, params


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Load save_adapter's file into a model built with the same LoRA settings; returns the model.

    Raises AdapterError naming the file when the settings, the tensor names or shapes differ.
    """
    path = Path(path)
    tensors, saved = read_adapter(path)
    expected = lora_params_of(model)
    if saved != expected:
        raise AdapterError(
            f"{path}: saved with LoRA settings {saved.model_dump(mode='json')}, but the model has "
            f"{expected.model_dump(mode='json')}"
        )
    own = lora_state_dict(model)
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise AdapterError(
            f"{path}: its LoRA tensors do not match the model's: missing {len(missing)} {missing[:3]}, "
            f"unexpected {len(unexpected)} {unexpected[:3]} (built from another model, or saved from a "
            "different wrapper than it is loaded into)"
        )
    wrong = [f"{k} {tuple(tensors[k].shape)} != {tuple(own[k].shape)}" for k in own if tensors[k].shape != own[k].shape]
    if wrong:
        raise AdapterError(f"{path}: LoRA tensor shapes differ from the model's: {'; '.join(wrong[:3])}")
    model.load_state_dict(tensors, strict=False)
    model.train(model.training)  # lets modules drop caches derived from the old weights (ClipClassifier)
    return model


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter that requires grad: what the optimizer gets."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """{'trainable': n, 'total': n} element counts, for logging."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for _, p in trainable_parameters(model))
    return {"trainable": trainable, "total": total}
