"""Batched step costs: what one continuous-batching engine step costs, from a server's profile.

A batched server (``specsim serve``) runs each step as ONE target forward over a padded batch:
every row scores ``max(tau) + 1`` positions whatever its own tau (``live/batch_cache.py``), so
the verify pass of ``B`` rows costs ``table[B - 1][max(tau)]`` -- ``table[b - 1][n - 1]`` being
the seconds of a pass over ``b`` rows scoring ``n`` tokens each, which the server profiles at
start-up into its trace's run metadata (``extra[BATCH_PROFILE_KEY]``: ``{"seconds": [[...]],
...}``, one row per batch size 1..B, one column per token count 1..T). On a CPU that cost grows
with ``B x n`` from the first token; on a GPU it stays flat up to the ridge -- the table says
which, measured, instead of the roofline's guess.

The profile is timed outside the decode loop (another context length, warmer caches), so
calibration (:mod:`sim.calibrate.batching`) scales it to the trace's level: measured verify
seconds over profiled seconds, summed over the trace's steps at the batch sizes and lengths
they ran (a low-load trace: mostly batch 1). The
draft passes of a step run over the batch too: their cost is ``draft_step_s`` times the
target's batch growth ``table[B - 1][0] / table[0][0]`` -- exact in kind for a layer-skip draft
(the target's first layers), an assumption for another model, ~0 either way for an n-gram draft.
Beyond the table, a pass grows in proportion to its tokens (compute-bound) from the last
measured cell: a stated extrapolation.
"""

from __future__ import annotations

from collections.abc import Sequence

Table = Sequence[Sequence[float]]


def pass_s(table: Table, batch: int, tokens: int) -> float:
    """Seconds of one pass over ``batch`` rows scoring ``tokens`` each, from the table (beyond
    it: proportional to ``batch x tokens`` from the last measured cell)."""
    b = min(batch, len(table))
    n = min(tokens, len(table[0]))
    base = float(table[b - 1][n - 1])
    if batch > b or tokens > n:
        base *= (batch * tokens) / (b * n)
    return base


def draft_growth(table: Table, batch: int) -> float:
    """How much a one-token pass over ``batch`` rows costs more than over one row."""
    one = float(table[0][0])
    return pass_s(table, batch, 1) / one if one > 0 else 1.0


__all__ = ["Table", "draft_growth", "pass_s"]
