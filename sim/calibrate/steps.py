"""Step costs from a trace that has each step's wall time (``cycle_s``) but not its draft/verify
split -- what an engine's responses or logs give (``specsim import``).

One step cost per draft length: the step's whole time is charged as its "verify" pass (the
drafting is inside it, so ``draft_step_s`` and ``overhead_s`` are 0), fitted as a line
``a + b * tau + k * context`` with a measured mean per tau beside it (``verify_table_s``), and --
when the cycles carry ``batch_size`` -- one such cost per batch size
(``batch_verify_table_s[b - 1][tau]``). Zero-length cycles (an imported request's first token,
which came from prefill) are left out.
"""

from __future__ import annotations

import numpy as np

from tracing.trace import Trace


def has_split(trace: Trace) -> bool:
    """Whether every cycle has its draft/verify/overhead split."""
    c = trace.cycles
    return not len(c) or not bool(np.isnan(c["draft_s"].to_numpy(dtype=float)).any())


def batch_step_table(tau: np.ndarray, batch: np.ndarray, step: np.ndarray,
                     line: tuple[float, float]) -> list[list[float]]:
    """``table[b - 1][n - 1]``: mean seconds of a step of ``b`` requests drafting ``n - 1``
    tokens where measured; elsewhere the line ``a + slope * (n - 1)`` scaled by that batch
    size's mean measured/line ratio (a batch size never seen: the nearest ones', linearly)."""
    a, slope = line
    max_b, max_n = int(batch.max()), int(tau.max()) + 1
    sums = np.zeros((max_b, max_n))
    counts = np.zeros((max_b, max_n))
    np.add.at(sums, (batch - 1, tau), step)
    np.add.at(counts, (batch - 1, tau), 1.0)
    base = a + slope * np.arange(max_n)
    ratio = np.full(max_b, np.nan)
    for b in range(max_b):
        seen = counts[b] > 0
        if seen.any() and (base[seen] > 0).all():
            ratio[b] = float((sums[b][seen] / counts[b][seen] / base[seen]).mean())
    known = np.flatnonzero(np.isfinite(ratio))
    if known.size == 0:
        return []
    ratio = np.interp(np.arange(max_b), known, ratio[known])
    table = np.where(counts > 0, sums / np.maximum(counts, 1), ratio[:, None] * base[None, :])
    return [[round(max(float(x), 1e-9), 9) for x in row] for row in table]
