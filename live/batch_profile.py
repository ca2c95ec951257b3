"""Batched verify-cost profile: one target pass over B rows x n scored tokens, B = 1..max_batch.

What :mod:`live.profile` does for one stream, for a batch: at start-up ``specsim serve`` times
the exact pass its engine step makes (:meth:`live.batch_cache.BatchedLM.feed` of ``n`` tokens
on each of ``B`` rows holding the same context, then the rollback) for every ``B`` and ``n``,
in a shuffled order each round so drift spreads over the grid, and keeps the median of each
cell. The grid goes into the server trace's run metadata under :data:`BATCH_PROFILE_KEY`, so a
trace recorded at low load carries what a bigger batch costs; its ``B = 1`` row also goes under
the single-stream key (:data:`live.profile.PROFILE_KEY`).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import torch

from live.batch_cache import BatchedLM
from live.device import synchronizer
from sim.calibrate.batching import BATCH_PROFILE_KEY
from sim.models.batching import pass_s

__all__ = ["BATCH_PROFILE_KEY", "ProfiledStepCost", "profile_batched_verify",
           "single_stream_profile"]


def profile_batched_verify(target: Any, input_ids: torch.Tensor, *, max_batch: int,
                           max_tokens: int, rounds: int = 3, seed: int = 0,
                           context: int = 0) -> dict[str, Any]:
    """Median seconds of one batched verify pass. Returns ``{"batch": [1..max_batch],
    "tokens": [1..max_tokens], "seconds": [[...] per batch size], "context_tokens": L,
    "rounds": rounds}``; ``seconds[B - 1][n - 1]`` is B rows scoring n tokens each. Every row
    holds ``input_ids`` -- repeated to ``context`` tokens when ``context`` > 0 (profile at the
    context the served requests will have: attention over a longer cache costs more per row)."""
    if max_batch < 1 or max_tokens < 1 or rounds < 1 or context < 0:
        raise ValueError(f"profile_batched_verify: max_batch, max_tokens and rounds must be "
                         f">= 1 and context >= 0, got {max_batch}, {max_tokens}, {rounds}, "
                         f"{context}")
    sync = synchronizer(target.device)  # this device, not the current one
    ids = input_ids.to(target.device)
    if context:
        reps = -(-context // int(ids.shape[1]))
        ids = ids.repeat(1, reps)[:, :context]
    context = int(ids.shape[1])
    filler = [int(ids[0, -1])] * max_tokens  # any tokens: the cost is shape-bound
    cells = [(b, n) for b in range(1, max_batch + 1) for n in range(1, max_tokens + 1)]
    samples: dict[tuple[int, int], list[float]] = {c: [] for c in cells}
    lm = BatchedLM(target.model, target.device)
    for _ in range(max_batch):
        lm.add_row(ids)
    rng = random.Random(seed)
    with torch.inference_mode():
        for _ in range(rounds):
            rng.shuffle(cells)
            for b, n in cells:
                sub = lm.head(b)  # the first b rows score n tokens each
                sync()
                t0 = time.perf_counter()
                sub.feed([filler[:n]] * b)
                sync()
                samples[(b, n)].append(time.perf_counter() - t0)
    seconds = [[round(statistics.median(samples[(b, n)]), 9) for n in range(1, max_tokens + 1)]
               for b in range(1, max_batch + 1)]
    return {"batch": list(range(1, max_batch + 1)), "tokens": list(range(1, max_tokens + 1)),
            "seconds": seconds, "context_tokens": context, "rounds": rounds}


def single_stream_profile(batched: dict[str, Any]) -> dict[str, Any]:
    """The ``B = 1`` row in :mod:`live.profile`'s shape."""
    return {"seconds": list(batched["seconds"][0]), "context_tokens": batched["context_tokens"],
            "rounds": batched["rounds"]}


class ProfiledStepCost:
    """The live server's step cost for the policies (:data:`sim.policies.library.StepCost`): the
    profiled verify pass of B rows scoring t + 1 tokens (:func:`sim.models.batching.pass_s`) plus
    t draft passes at the draft seconds per drafted token measured so far at that batch size
    (an exponential average of the steps run; none seen yet: the nearest smaller batch's, or 0)."""

    def __init__(self, table: list[list[float]], decay: float = 0.9) -> None:
        self.table = table
        self.decay = decay
        self.draft_per_token: dict[int, float] = {}

    def observe(self, batch: int, tau: int, draft_s: float) -> None:
        """A step of ``batch`` rows whose longest draft was ``tau`` spent ``draft_s`` drafting."""
        if tau <= 0:
            return
        per = draft_s / tau
        old = self.draft_per_token.get(batch)
        self.draft_per_token[batch] = per if old is None else old + (1 - self.decay) * (per - old)

    def __call__(self, batch: int, tau: int) -> float:
        known = [b for b in self.draft_per_token if b <= batch]
        draft = self.draft_per_token[max(known)] if known else 0.0
        return pass_s(self.table, batch, tau + 1) + tau * draft
