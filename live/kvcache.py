"""A causal LM with its own KV cache that persists across cycles and can be rolled back.

Both the target (verification) and model drafts run through :class:`CachedLM`: tokens are fed
once, their keys and values stay in a transformers ``DynamicCache``, and a rejected suffix is
cut off with ``DynamicCache.crop`` -- the same call transformers' assisted generation makes
(``cache.crop(-tokens_to_remove)`` in transformers 5.x).

Sliding-window attention (Mistral, Gemma-2/3, Phi-3): such a layer normally keeps only its last
``window - 1`` positions, so once the context passes the window a rejected suffix cannot be
cut off any more (the states before it are gone; transformers raises). As assisted generation
does, the cache *records past states* (``activate_past_recording``): a forward keeps everything
until the next ``crop``, which removes the rejected suffix and then trims the layer back to its
window. ``crop_to`` therefore always calls ``crop`` on such a cache, even with nothing to remove.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import torch
from transformers import DynamicCache


class KVModel(Protocol):
    """What the decoder needs of a model with a KV cache: :class:`CachedLM` (a DynamicCache)
    or :class:`live.static.StaticLM` (a static cache, compiled steps)."""

    model: Any
    length: int

    def reset(self) -> None:
        """Forget the sequence."""

    def feed(self, tokens: torch.Tensor, logits_to_keep: int = 1) -> torch.Tensor:
        """Run ``tokens`` (1, k) after the cached ones; the last ``logits_to_keep`` logits."""
        ...

    def crop_to(self, length: int) -> None:
        """Keep only the first ``length`` cached positions."""


def cache_keyword(model: Any) -> str:
    """The forward keyword that takes the cache: ``cache`` (transformers >= 5.2x), else the
    older ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class CachedLM:
    """``model`` plus one sequence's KV cache. ``length`` = tokens whose keys/values are cached."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._cache_kw = cache_keyword(model)
        self.reset()

    def reset(self) -> None:
        """Forget the sequence (a new request)."""
        self.cache = DynamicCache(config=self.model.config)
        # sliding-window layers keep their past until each crop, so a rollback stays possible
        self.cache.activate_past_recording()
        self.windowed = any(getattr(layer, "is_sliding", False) for layer in self.cache.layers)
        self.length = 0

    def feed(self, tokens: torch.Tensor, logits_to_keep: int = 1) -> torch.Tensor:
        """Run ``tokens`` (1, k) after the cached ones; return the last ``logits_to_keep``
        positions' logits (logits_to_keep, V). Positions follow from the cache length."""
        out = self.model(
            input_ids=tokens,
            use_cache=True,
            logits_to_keep=logits_to_keep,
            **{self._cache_kw: self.cache},
        )
        self.length += int(tokens.shape[1])
        return out.logits[0]

    def crop_to(self, length: int) -> None:
        """Keep only the first ``length`` cached positions (a rejected suffix is dropped)."""
        remove = self.length - length
        if remove < 0:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {length}")
        if remove or self.windowed:  # crop(0) trims a windowed layer back to its window
            self.cache.crop(-remove)
            self.length = length
