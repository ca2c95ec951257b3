"""Verify-cost profile: what one target pass costs for every number of scored tokens.

A trace measures the verify pass only at the draft lengths its policy happened to use: a
``fixed:tau=8`` run says nothing about a 3-token pass, and on a CPU the cost is no line in the
token count (a 1-token pass takes a matrix-vector path, 2 or 3 tokens can cost more than 4). So
a capture also profiles the pass itself, as Vidur profiles its operators before simulating:
right after the warm-up, on the first prompt's context, the exact call the decoder's verify step
makes (:meth:`CachedLM.feed` over ``n`` tokens, then the crop back) is timed for
``n = 1 .. max_tokens``, in a shuffled order each round so that drift spreads over all ``n``;
the median of each ``n`` is kept. The simulator reads it from the run metadata
(``extra["verify_profile_s"]``) and scales it to the trace's own measured passes.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import torch

from live.kvcache import CachedLM
from sim.calibrate.costs import PROFILE_KEY  # where the simulator reads it

__all__ = ["PROFILE_KEY", "profile_verify"]


def profile_verify(target: Any, input_ids: torch.Tensor, *, max_tokens: int = 17,
                   rounds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Median seconds of one verify pass scoring ``n`` tokens, ``n = 1..max_tokens``, after the
    context ``input_ids`` (1, L). Returns ``{"seconds": [...], "context_tokens": L,
    "rounds": rounds}``; ``seconds[n - 1]`` is the n-token pass."""
    if max_tokens < 1 or rounds < 1:
        raise ValueError(f"profile_verify: max_tokens and rounds must be >= 1, "
                         f"got {max_tokens}, {rounds}")
    device = target.device
    on_cuda = str(device).startswith("cuda")
    lm = CachedLM(target.model)
    ids = input_ids.to(device)
    context = int(ids.shape[1])
    filler = ids[:, -1:].expand(1, max_tokens).contiguous()  # any tokens: cost is shape-bound
    samples: dict[int, list[float]] = {n: [] for n in range(1, max_tokens + 1)}
    order = list(samples)
    rng = random.Random(seed)
    with torch.inference_mode():
        lm.feed(ids)
        for _ in range(rounds):
            rng.shuffle(order)
            for n in order:
                if on_cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                lm.feed(filler[:, :n], logits_to_keep=n)
                if on_cuda:
                    torch.cuda.synchronize()
                samples[n].append(time.perf_counter() - t0)
                lm.crop_to(context)
    return {"seconds": [round(statistics.median(samples[n]), 9) for n in sorted(samples)],
            "context_tokens": context, "rounds": rounds}
