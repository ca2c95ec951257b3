"""One KV cache for a batch of sequences of different lengths: padding, holes and masks.

:class:`BatchedLM` keeps a single transformers ``DynamicCache`` of shape (B, H, L, D) for B
sequences. Column ``j`` of row ``b`` holds a real token of that sequence when ``valid[b, j]``
is set; otherwise it is a hole (left padding of a short row, right padding of a short input, or
a drafted token the target rejected). Every forward passes an explicit 4-D mask: a query sees
the valid keys of its own row at or before its own column, plus always its own column, so no
query row is ever fully masked (a fully masked row would give NaN keys that poison the cache)
and each row's rotary positions are its own count of real tokens (``position_ids``). Rejection
needs no copy: the rejected columns are marked holes. Holes are squeezed out
(:meth:`BatchedLM.compact`) when they make up too much of the cache, and when rows leave.

Why holes rather than per-row caches stacked for each step: see the measurements in
``live/batch.py``'s docstring (``tests/bench/bench_batch.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from live.kvcache import cache_keyword
from tracing.errors import SpecsimError


def _kv_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a decoder config."""
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return layers, kv_heads, head_dim


def _wrap(keys: list[torch.Tensor], values: list[torch.Tensor]) -> DynamicCache:
    """A DynamicCache over these per-layer tensors, without copying them."""
    cache = DynamicCache()
    for k, v in zip(keys, values, strict=True):
        layer = DynamicLayer()
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
        cache.layers.append(layer)
    return cache


def _unwrap(cache: DynamicCache, n_layers: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The per-layer key and value tensors of a DynamicCache."""
    layers: list[Any] = list(cache.layers)[:n_layers]
    return [layer.keys for layer in layers], [layer.values for layer in layers]


class BatchedLM:
    """``model`` plus one padded KV cache for a batch of sequences (rows 0..B-1).

    ``lengths[b]`` is the number of real tokens cached for row ``b``; ``valid`` (B, L) marks
    which cache columns hold them.
    """

    def __init__(self, model: Any, device: str | torch.device = "cpu") -> None:
        config = model.config
        if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
            layer_types = getattr(config, "layer_types", None) or []
            if any(t != "full_attention" for t in layer_types):
                raise SpecsimError(f"batched decoding: model type {config.model_type!r} has "
                                   "sliding-window layers (only full-attention caches batch)")
        self.model = model
        self._cache_kw = cache_keyword(model)  # `cache` (transformers >= 5.2x) or the older name
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        self.n_layers, self.kv_heads, self.head_dim = _kv_shape(config)
        self.eager = getattr(config, "_attn_implementation", "sdpa") == "eager"
        self.keys: list[torch.Tensor] = [self._empty(0, 0) for _ in range(self.n_layers)]
        self.values: list[torch.Tensor] = [self._empty(0, 0) for _ in range(self.n_layers)]
        self.valid = torch.zeros(0, 0, dtype=torch.bool, device=self.device)
        self.lengths: list[int] = []

    def _empty(self, rows: int, cols: int) -> torch.Tensor:
        return torch.zeros(rows, self.kv_heads, cols, self.head_dim, dtype=self.dtype,
                           device=self.device)

    @property
    def rows(self) -> int:
        """Sequences in the batch."""
        return len(self.lengths)

    @property
    def columns(self) -> int:
        """Cache columns (real tokens and holes) per row."""
        return int(self.valid.shape[1])

    # -- rows joining and leaving -------------------------------------------------------------

    def add_row(self, prefix: torch.Tensor | None) -> int:
        """Append a sequence whose first tokens are ``prefix`` (1, n) (``None``/empty: none
        yet); its prefill runs alone, then joins the batch left-padded. Returns its row."""
        n = 0 if prefix is None else int(prefix.shape[1])
        keys = [self._empty(1, 0)] * self.n_layers
        values = [self._empty(1, 0)] * self.n_layers
        if prefix is not None and n:
            cache = DynamicCache()
            with torch.inference_mode():
                self.model(input_ids=prefix.to(self.device), use_cache=True, logits_to_keep=1,
                           **{self._cache_kw: cache})
            keys, values = _unwrap(cache, self.n_layers)
        width = max(self.columns, n)
        grow = width - self.columns
        for i in range(self.n_layers):
            old_k, old_v = self.keys[i], self.values[i]
            if grow:
                pad = self._empty(self.rows, grow)
                old_k, old_v = torch.cat([pad, old_k], dim=2), torch.cat([pad, old_v], dim=2)
            pad = self._empty(1, width - n)
            self.keys[i] = torch.cat([old_k, torch.cat([pad, keys[i]], dim=2)], dim=0)
            self.values[i] = torch.cat([old_v, torch.cat([pad, values[i]], dim=2)], dim=0)
        old = self.valid
        if grow:
            old = torch.cat([torch.zeros(self.rows, grow, dtype=torch.bool, device=self.device),
                             old], dim=1)
        row = torch.zeros(1, width, dtype=torch.bool, device=self.device)
        row[0, width - n:] = True
        self.valid = torch.cat([old, row], dim=0)
        self.lengths.append(n)
        return self.rows - 1

    def remove_rows(self, rows: list[int]) -> None:
        """Drop these rows; the others keep their order (row indices shift down)."""
        if not rows:
            return
        gone = set(rows)
        keep = [b for b in range(self.rows) if b not in gone]
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.valid = self.valid.index_select(0, index)
        self.lengths = [self.lengths[b] for b in keep]
        self.compact(force=True)

    def head(self, rows: int) -> BatchedLM:
        """The first ``rows`` rows as a batch of their own, sharing tensors: feeding it builds
        new tensors and leaves this cache as it was (profiling a batch size)."""
        view = BatchedLM.__new__(BatchedLM)
        view.__dict__.update(self.__dict__)
        view.keys = [k[:rows] for k in self.keys]
        view.values = [v[:rows] for v in self.values]
        view.valid = self.valid[:rows]
        view.lengths = self.lengths[:rows]
        return view

    # -- the forward pass ---------------------------------------------------------------------

    def feed(self, inputs: list[list[int]], pad_token: int = 0) -> torch.Tensor:
        """Run each row's new tokens ``inputs[b]`` (possibly none) after its cached ones, in ONE
        forward over the batch. Returns logits (B, K, V), K = the longest input; row ``b``'s
        logits for its j-th input are at ``[b, j]`` (the rest are padding). Every fed token
        is kept; :meth:`truncate` drops a rejected suffix."""
        if len(inputs) != self.rows:
            raise ValueError(f"feed: {len(inputs)} inputs for {self.rows} rows")
        width = max(1, max((len(x) for x in inputs), default=1))
        ids = torch.full((self.rows, width), pad_token, dtype=torch.long)
        fresh = torch.zeros(self.rows, width, dtype=torch.bool)
        for b, x in enumerate(inputs):
            if x:
                ids[b, : len(x)] = torch.tensor(x, dtype=torch.long)
                fresh[b, : len(x)] = True
        ids, fresh = ids.to(self.device), fresh.to(self.device)
        start = torch.tensor(self.lengths, dtype=torch.long, device=self.device)
        positions = start[:, None] + torch.arange(width, device=self.device)[None, :]  # (B, K)
        past = self.columns
        valid = torch.cat([self.valid, fresh], dim=1)  # (B, L + K)
        mask = self._mask(valid, past, width)
        cache = _wrap(self.keys, self.values)
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, **{self._cache_kw: cache})
        self.keys, self.values = _unwrap(cache, self.n_layers)
        self.valid = valid
        self.lengths = [n + len(x) for n, x in zip(self.lengths, inputs, strict=True)]
        return out.logits

    def _mask(self, valid: torch.Tensor, past: int, width: int) -> torch.Tensor:
        """(B, 1, K, L + K) mask: valid keys of the row at or before the query's column, plus
        the query's own column (bool for sdpa, additive float for eager attention)."""
        cols = torch.arange(past + width, device=self.device)
        query_cols = past + torch.arange(width, device=self.device)
        causal = cols[None, :] <= query_cols[:, None]  # (K, L + K)
        own = cols[None, :] == query_cols[:, None]
        mask = (valid[:, None, :] & causal[None]) | own[None]  # (B, K, L + K)
        mask = mask[:, None]
        if self.eager:
            return torch.zeros(mask.shape, dtype=self.dtype, device=self.device).masked_fill(
                ~mask, torch.finfo(self.dtype).min)
        return mask

    # -- rollback and housekeeping ------------------------------------------------------------

    def truncate(self, row: int, length: int) -> None:
        """Keep only the first ``length`` real tokens of ``row`` (the rest become holes)."""
        if not 0 <= length <= self.lengths[row]:
            raise ValueError(f"truncate: row {row} has {self.lengths[row]} tokens, not {length}")
        if length < self.lengths[row]:
            v = self.valid[row]
            self.valid[row] = v & (torch.cumsum(v.long(), 0) <= length)
            self.lengths[row] = length

    def compact(self, force: bool = False) -> None:
        """Squeeze the holes out (rows left-padded to the longest) when they take more than
        half the cache and some columns are to be won, or always with ``force``."""
        longest = max(self.lengths, default=0)
        if self.columns == longest or (not force and self.columns < 2 * longest + 16):
            return
        if not self.rows:
            self.keys = [self._empty(0, 0) for _ in range(self.n_layers)]
            self.values = [self._empty(0, 0) for _ in range(self.n_layers)]
            self.valid = torch.zeros(0, 0, dtype=torch.bool, device=self.device)
            return
        # index[b, j]: the cache column that becomes column j of row b (left-padded)
        index = torch.zeros(self.rows, longest, dtype=torch.long, device=self.device)
        valid = torch.zeros(self.rows, longest, dtype=torch.bool, device=self.device)
        for b, n in enumerate(self.lengths):
            if n:
                index[b, longest - n:] = torch.nonzero(self.valid[b]).flatten()
                valid[b, longest - n:] = True
        gather = index[:, None, :, None].expand(-1, self.kv_heads, -1, self.head_dim)
        self.keys = [k.gather(2, gather) for k in self.keys]
        self.values = [v.gather(2, gather) for v in self.values]
        self.valid = valid
