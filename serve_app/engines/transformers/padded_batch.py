"""A left-padded batch of sequences sharing one KV cache, that rows can join and leave.

Every row's cache is right-aligned in a `[rows, heads, length, dim]` tensor per
layer; the padding on the left is zeros hidden by the attention mask, and each
row's positions count only its real tokens, so a row's attention sees exactly
what it would see alone. Joining (a prefilled group of new rows) pads the
shorter cache on the left and concatenates; leaving selects the remaining rows
and cuts the columns that became padding in every row, so the cache never grows
past the longest live row.
"""

from __future__ import annotations

import inspect
from typing import Optional

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache


class PaddedBatch:
    def __init__(self, cache: DynamicCache, mask: torch.Tensor, pending: torch.Tensor):
        self.cache = cache
        self.mask = mask  # [rows, cache length]: 1 for a real token
        self.pending = pending  # [rows, 1]: each row's newest token, not yet in the cache

    def __len__(self) -> int:
        return self.mask.shape[0]

    @classmethod
    def prefill(cls, model, prompts: list[list[int]], pad_id: int, **extra) -> tuple["PaddedBatch", torch.Tensor]:
        """Run the prompts as one left-padded forward; return the batch and each row's last logits.
        `extra`: what else the forward takes per row (peft's adapter_names)."""
        device = model.device
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        # What generate() does for left padding: positions count real tokens only.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = _forward(model, ids, mask, positions, cache, torch.arange(width, device=device), **extra)
        pending = torch.zeros((len(prompts), 1), dtype=torch.long, device=device)
        return cls(cache, mask, pending), logits

    def step(self, model, **extra) -> torch.Tensor:
        """Feed every row's pending token; return each row's next-token logits."""
        length = self.mask.shape[1]
        positions = self.mask.sum(-1, keepdim=True)  # real tokens before the pending one
        self.mask = F.pad(self.mask, (0, 1), value=1)
        cache_position = torch.arange(length, length + 1, device=self.mask.device)
        return _forward(model, self.pending, self.mask, positions, self.cache, cache_position, **extra)

    def set_pending(self, tokens: list[int]) -> None:
        self.pending = torch.tensor(tokens, dtype=torch.long, device=self.mask.device).unsqueeze(-1)

    def keep(self, rows: list[int]) -> Optional["PaddedBatch"]:
        """The batch with only `rows` (in that order); None when no row is left."""
        if not rows:
            return None
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        live = mask.any(0).nonzero()
        start = int(live[0]) if len(live) else mask.shape[1]
        layers = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in _layers(self.cache)
        ]
        return PaddedBatch(DynamicCache(layers), mask[:, start:], self.pending.index_select(0, index))

    def merge(self, other: "PaddedBatch") -> "PaddedBatch":
        """This batch's rows followed by `other`'s, caches left-padded to one length."""
        width = max(self.mask.shape[1], other.mask.shape[1])

        def left_pad(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            missing = width - t.shape[-dim_from_end]
            return F.pad(t, (0, 0) * (dim_from_end - 1) + (missing, 0)) if missing else t

        layers = [
            (torch.cat([left_pad(k1, 2), left_pad(k2, 2)]), torch.cat([left_pad(v1, 2), left_pad(v2, 2)]))
            for (k1, v1), (k2, v2) in zip(_layers(self.cache), _layers(other.cache))
        ]
        mask = torch.cat([left_pad(self.mask, 1), left_pad(other.mask, 1)])
        return PaddedBatch(DynamicCache(layers), mask, torch.cat([self.pending, other.pending]))


def _forward(model, ids, mask, positions, cache: DynamicCache, cache_position, **extra) -> torch.Tensor:
    """One forward pass that appends to `cache` in place; the last position's logits per row."""
    # transformers 5 renamed `past_key_values` to `cache` and dropped `cache_position`
    # (still accepted and ignored); 4.x needs both under their old names. A peft model
    # passes them on to the model it wraps, whose signature tells.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        cache_position=cache_position,
        use_cache=True,
        logits_to_keep=1,
        **{cache_kw: cache},
        **extra,
    )
    return out.logits[:, -1, :]


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]
