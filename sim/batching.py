"""Batched step costs: what one continuous-batching engine step costs, from a server's profile.

A batched server (``specsim serve``) runs each step as ONE target forward over a padded batch:
every row scores ``max(tau) + 1`` positions whatever its own tau (``live/batch_cache.py``), so
the verify pass of ``B`` rows costs ``table[B - 1][max(tau)]`` -- ``table[b - 1][n - 1]`` being
the seconds of a pass over ``b`` rows scoring ``n`` tokens each, which the server profiles at
start-up into its trace's run metadata (``extra[BATCH_PROFILE_KEY]``: ``{"seconds": [[...]],
...}``, one row per batch size 1..B, one column per token count 1..T). On a CPU that cost grows
with ``B x n`` from the first token; on a GPU it stays flat up to the ridge -- the table says
which, measured, instead of the roofline's guess.

The profile is timed outside the decode loop (another context length, warmer caches), so it is
scaled to the trace's level: measured verify seconds over profiled seconds, summed over the
trace's steps at the batch sizes and lengths they ran (a low-load trace: mostly batch 1). The
draft passes of a step run over the batch too: their cost is ``draft_step_s`` times the
target's batch growth ``table[B - 1][0] / table[0][0]`` -- exact in kind for a layer-skip draft
(the target's first layers), an assumption for another model, ~0 either way for an n-gram draft.
Beyond the table, a pass grows in proportion to its tokens (compute-bound) from the last
measured cell: a stated extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tracing.errors import SpecsimError
from tracing.trace import Trace

BATCH_PROFILE_KEY = "batch_profile_s"  # run metadata key written by the server at start-up

Table = Sequence[Sequence[float]]


def batch_profile_of(trace: Trace) -> list[list[float]]:
    """The batched verify profile of a server trace (``table[b - 1][n - 1]`` seconds), or []
    when it has none. A malformed one is a SpecsimError naming the trace."""
    entry = (trace.meta.extra or {}).get(BATCH_PROFILE_KEY)
    if entry is None:
        return []
    seconds = entry.get("seconds") if isinstance(entry, dict) else entry
    where = f"{trace.name}: run metadata {BATCH_PROFILE_KEY}.seconds"
    if not isinstance(seconds, list) or not seconds:
        raise SpecsimError(f"{where} must be a non-empty list (one row per batch size)")
    table: list[list[float]] = []
    for b, row in enumerate(seconds, start=1):
        if not isinstance(row, list) or not row:
            raise SpecsimError(f"{where}: row {b} must be a non-empty list of seconds")
        try:
            values = [float(x) for x in row]
        except (TypeError, ValueError):
            raise SpecsimError(f"{where}: row {b} must hold numbers") from None
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise SpecsimError(f"{where}: row {b} must hold positive numbers")
        table.append(values)
    width = len(table[0])
    if any(len(row) != width for row in table):
        raise SpecsimError(f"{where}: every row needs the same {width} token counts")
    return table


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


def step_groups(trace: Trace) -> pd.DataFrame:
    """The trace's engine steps: one row per step (cycles sharing a start time), with its
    ``batch`` (rows), ``longest`` (max tau) and ``verify_s`` (the step's verify seconds)."""
    c = trace.cycles
    if len(c) == 0:
        return pd.DataFrame({"batch": [], "longest": [], "verify_s": []})
    grouped = c.groupby("start_s", sort=True)
    return pd.DataFrame({
        "batch": grouped.size().to_numpy(),
        "longest": grouped["tau"].max().to_numpy(),
        "verify_s": grouped["verify_s"].max().to_numpy(),
    })


def scaled_table(trace: Trace, table: Table) -> list[list[float]]:
    """The profile scaled to the trace's measured verify passes (see the module docstring);
    unscaled when the trace has no measured verify seconds."""
    steps = step_groups(trace)
    measured = steps["verify_s"].to_numpy(dtype=float)
    ok = np.isfinite(measured) & (measured > 0)
    if not ok.any():
        return [list(map(float, row)) for row in table]
    profiled = np.array([pass_s(table, int(b), int(t) + 1) for b, t in
                         zip(steps["batch"][ok], steps["longest"][ok], strict=True)])
    scale = float(measured[ok].sum() / profiled.sum())
    return [[round(scale * float(x), 9) for x in row] for row in table]


def table_info(table: Table) -> dict[str, Any]:
    """For figures: the table's shape."""
    return {"batch_sizes": len(table), "token_counts": len(table[0]) if table else 0}


__all__ = [
    "BATCH_PROFILE_KEY",
    "batch_profile_of",
    "draft_growth",
    "pass_s",
    "scaled_table",
    "step_groups",
    "table_info",
]
