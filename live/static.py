"""The fast path (``--compile``): a static KV cache, rollback by position, compiled steps.

:class:`CachedLM` grows a ``DynamicCache`` by concatenation, so every forward allocates, and
every one of the ~15 kernels per layer is launched from Python: on a GPU a 135M model spends
~20 ms per token in framework overhead while its weights read in ~0.1 ms. :class:`StaticLM`
keeps the same interface (``feed`` / ``crop_to`` / ``reset`` / ``length``) over transformers'
``StaticCache``: keys and values for ``max_len`` positions are allocated once per layer at fixed
addresses, position ``i`` always lives in slot ``i``, and

* **rollback is by position**: ``crop_to(n)`` moves the write position back to ``n``
  (each layer's ``cumulative_length``, through ``StaticCache.crop`` where the layers have it, by
  hand where they do not: transformers 5.17's ``StaticLayer`` has no ``crop``); the rejected entries stay in their slots, are never attended to (the
  causal mask stops at the query's position) and are overwritten by the next forward;
* the decode step (1 token: draft steps, target-only steps) and the verify step (``1 + tau``
  tokens) are compiled once with ``torch.compile`` (inductor; ``mode="reduce-overhead"``, i.e.
  CUDA graphs, on cuda): one static graph for 1 token and, for 2 or more, one graph dynamic in
  the token count from its first call (the token dimension is marked dynamic, 2..``max_step``:
  left to itself dynamo would first specialise on 2 tokens and trace the whole model a third
  time), so two graphs in all, compiled by :meth:`StaticLM.warm`, and a policy that changes tau
  every cycle never recompiles. The prefill (the first feed after ``reset``, or any feed longer
  than ``max_step``) runs eagerly, as transformers advises.

Sliding-window models are refused: a static sliding layer is a ring buffer, and a rejected
suffix past the window cannot be rolled back in it.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import StaticCache

from live.kvcache import cache_keyword
from tracing.errors import SpecsimError

MAX_STEP = 64  # longest feed run through the compiled steps (longer: eager, like a prefill)
BACKEND: Any = "inductor"  # torch.compile backend when none is given (tests may swap it)


def compile_mode(device: str | torch.device) -> str | None:
    """``reduce-overhead`` (CUDA graphs) on cuda, inductor's default elsewhere."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else None


class StaticLM:
    """``model`` plus one sequence's static KV cache of ``max_len`` positions, with compiled
    decode and verify steps (``compile=False``: the same static cache, run eagerly).

    ``compile_s`` accumulates the wall time of calls that compiled a new graph (the first call
    of each step kind), so a caller can report compilation apart from decoding.
    """

    def __init__(self, model: Any, max_len: int, *, compile: bool = True,
                 mode: str | None = None, backend: Any = None,
                 max_step: int = MAX_STEP) -> None:
        config = model.config
        if getattr(config, "sliding_window", None) or any(
                t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
            raise SpecsimError(f"--compile: model type {getattr(config, 'model_type', '?')!r} "
                               "uses sliding-window attention, which a static cache cannot roll "
                               "back; run it without --compile")
        if max_len < 2:
            raise SpecsimError(f"static cache: max_len must be >= 2, got {max_len}")
        self.model = model
        self.max_len = int(max_len)
        self.max_step = max_step
        self.windowed = False
        self.cache = StaticCache(config=config, max_cache_len=self.max_len)
        self._cache_kw = cache_keyword(model)  # ``cache`` (transformers >= 5.2x), else
        # ``past_key_values``: a misnamed keyword would be swallowed and the cache ignored
        self.length = 0
        self.compiled = compile
        self.compile_s = 0.0
        self._fresh = {"one": True, "many": True}  # step kinds not yet called
        if compile:
            backend = BACKEND if backend is None else backend
            dev_mode = mode if mode is not None else compile_mode(model.device)
            if backend != "inductor":
                dev_mode = None  # a mode is an inductor setting
            # two functions, two code objects: dynamo keeps its graphs per code object
            self._one = torch.compile(self._step_one, mode=dev_mode, backend=backend,
                                      dynamic=False)
            self._many = torch.compile(self._step_many, mode=dev_mode, backend=backend,
                                       dynamic=True)
        else:
            self._one, self._many = self._step_one, self._step_many

    def _step_one(self, tokens: torch.Tensor) -> torch.Tensor:
        """One forward over ``tokens`` (1, 1) after the cached positions: logits (1, 1, V)."""
        return self.model(input_ids=tokens, use_cache=True, **{self._cache_kw: self.cache}).logits

    def _step_many(self, tokens: torch.Tensor) -> torch.Tensor:
        """One forward over ``tokens`` (1, k >= 2) after the cached positions: (1, k, V)."""
        return self.model(input_ids=tokens, use_cache=True, **{self._cache_kw: self.cache}).logits

    def reset(self) -> None:
        """Forget the sequence: the write position goes back to 0 (tensors kept in place, so
        the compiled graphs and CUDA graphs stay valid)."""
        with torch.inference_mode():  # the cache's tensors were made under inference mode
            self.cache.reset()
        self.length = 0

    def feed(self, tokens: torch.Tensor, logits_to_keep: int = 1) -> torch.Tensor:
        """Run ``tokens`` (1, k) after the cached ones; return the last ``logits_to_keep``
        positions' logits (logits_to_keep, V)."""
        k = int(tokens.shape[1])
        if self.length + k > self.max_len:
            raise SpecsimError(f"static cache: {self.length} + {k} tokens exceed its {self.max_len}"
                               " positions (a longer prompt or more new tokens than it was sized"
                               " for)")
        if self.length == 0 or k > self.max_step:  # prefill: eager, only the last logits
            out = self.model(input_ids=tokens, use_cache=True, logits_to_keep=logits_to_keep,
                             **{self._cache_kw: self.cache})
            self.length += k
            return out.logits[0]
        kind = "one" if k == 1 else "many"
        step = self._one if k == 1 else self._many
        t0 = time.perf_counter()
        # always an inference-mode copy: the graphs' guards see one kind of input tensor
        with torch.inference_mode():
            x = tokens.clone(memory_format=torch.contiguous_format)
            if kind == "many" and self._fresh["many"] and self.compiled:
                # one graph for every verify length from the start (no 2-token specialisation)
                torch._dynamo.mark_dynamic(x, 1, min=2, max=self.max_step)
            logits = step(x)[0]  # (k, V)
        if self.compiled and self._fresh[kind]:
            self.compile_s += time.perf_counter() - t0
            self._fresh[kind] = False
        self.length += k
        # a compiled graph's output buffer is reused by the next replay (CUDA graphs): copy
        return logits[k - logits_to_keep:].clone()

    @torch.inference_mode()
    def warm(self, input_ids: torch.Tensor) -> None:
        """Compile every step now (untimed): a prefill of ``input_ids``' first token, then
        steps of 1 and 2 tokens (the dynamic verify graph), and 3 (its first replay at another
        length), each rolled back; the cache is left empty."""
        self.reset()
        first = input_ids[:, :1]
        self.feed(first)
        for k in (1, 2, 3):
            self.feed(first.expand(1, k), logits_to_keep=k)
            self.crop_to(1)
        self.reset()

    def crop_to(self, length: int) -> None:
        """Move the write position back to ``length`` (the rejected suffix stays in its slots,
        unread, until overwritten)."""
        remove = self.length - length
        if remove < 0:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {length}")
        if remove:
            with torch.inference_mode():
                crop_static(self.cache, remove)
            self.length = length


def crop_static(cache: Any, remove: int) -> None:
    """Move every layer of a ``StaticCache`` back by ``remove`` positions. transformers >= 5.2x
    gives ``StaticLayer.crop``; 5.17's ``StaticLayer`` has none (its ``Cache.crop`` then fails
    with AttributeError), but keeps the same write position, a 0-d ``cumulative_length`` tensor,
    which is moved back in place (in place: compiled graphs hold its address)."""
    for layer in cache.layers:
        if hasattr(layer, "crop"):
            layer.crop(-remove)
        elif getattr(layer, "is_initialized", False):
            layer.cumulative_length.sub_(remove)
