"""Calibration of batched step costs: a server trace's batched verify profile, scaled to the
passes the trace measured (see :mod:`sim.models.batching` for how the simulator charges them).

``specsim serve`` profiles one target pass over ``b`` rows scoring ``n`` tokens each for every
``b <= max_batch`` and ``n <= tau + 1`` at start-up (``live.batch_profile``) into the run
metadata under :data:`BATCH_PROFILE_KEY`: ``{"batch": [...], "tokens": [...], "seconds":
[[...] per batch size], ...}``. The profile ran outside the decode loop, so it is scaled by
measured over profiled verify seconds, summed over the trace's engine steps (rows sharing a
``start_s``) at the batch size and longest draft each ran.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.models.batching import Table, pass_s
from tracing.errors import SpecsimError
from tracing.trace import Trace

BATCH_PROFILE_KEY = "batch_verify_profile_s"  # run metadata key written by the server


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
    """The profile scaled to the trace's measured verify passes; unscaled when the trace has
    no measured verify seconds."""
    steps = step_groups(trace)
    measured = steps["verify_s"].to_numpy(dtype=float)
    ok = np.isfinite(measured) & (measured > 0)
    if not ok.any():
        return [[float(x) for x in row] for row in table]
    profiled = np.array([pass_s(table, int(b), int(t) + 1) for b, t in
                         zip(steps["batch"][ok], steps["longest"][ok], strict=True)])
    scale = float(measured[ok].sum() / profiled.sum())
    return [[round(scale * float(x), 9) for x in row] for row in table]


def batch_table(trace: Trace) -> list[list[float]]:
    """A server trace's batched profile scaled to its measured passes ([] without one)."""
    profile = batch_profile_of(trace)
    return scaled_table(trace, profile) if profile else []


def max_batch_of(trace: Trace) -> int:
    """The server's ``max_batch`` from the run metadata (``server.max_batch`` as ``specsim
    serve`` writes it, or a top-level ``max_batch``) or the largest ``batch_size`` the cycles
    ran at (schema v2), whichever is larger; 1 when absent."""
    extra = trace.meta.extra or {}
    server = extra.get("server")
    nested = server.get("max_batch") if isinstance(server, dict) else None
    recorded = int(nested or extra.get("max_batch") or 1)
    c = trace.cycles
    if "batch_size" in c.columns and len(c):  # schema v2: the batch each step ran at
        ran = c["batch_size"].to_numpy(dtype=float)
        if np.isfinite(ran).all():
            return max(recorded, int(ran.max()))
    return recorded


__all__ = ["BATCH_PROFILE_KEY", "batch_profile_of", "batch_table", "max_batch_of",
           "scaled_table", "step_groups"]
