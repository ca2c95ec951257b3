"""A causal LM with its own KV cache that persists across cycles and can be rolled back.

Both the target (verification) and model drafts run through :class:`CachedLM`: tokens are fed
once, their keys and values stay in a transformers ``DynamicCache``, and a rejected suffix is
cut off with ``DynamicCache.crop`` -- the same call transformers' assisted generation makes
(``past_key_values.crop(-tokens_to_remove)`` in transformers 5.x).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache


class CachedLM:
    """``model`` plus one sequence's KV cache. ``length`` = tokens whose keys/values are cached."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.length = 0

    def reset(self) -> None:
        """Forget the sequence (a new request)."""
        self.cache = DynamicCache(config=self.model.config)
        self.length = 0

    def feed(self, tokens: torch.Tensor, logits_to_keep: int = 1) -> torch.Tensor:
        """Run ``tokens`` (1, k) after the cached ones; return the last ``logits_to_keep``
        positions' logits (logits_to_keep, V). Positions follow from the cache length."""
        out = self.model(
            input_ids=tokens,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )
        self.length += int(tokens.shape[1])
        return out.logits[0]

    def crop_to(self, length: int) -> None:
        """Keep only the first ``length`` cached positions (a rejected suffix is dropped)."""
        remove = self.length - length
        if remove < 0:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {length}")
        if remove:
            self.cache.crop(-remove)
            self.length = length
