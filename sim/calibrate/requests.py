"""A measured trace's requests as replay tables: lengths and arrival times in arrival order.

Workload request ``i`` replays trace request ``i % n`` of that order (:func:`request_order`), so
replaying a trace serves its requests exactly; :mod:`sim.engine.workload` draws from these tables and
never reads a trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracing.trace import Trace


def request_order(trace: Trace) -> np.ndarray:
    """Row order of ``trace.requests`` by arrival (stable): workload request i replays trace
    request ``order[i % n]``."""
    return np.argsort(trace.requests["arrival_s"].to_numpy(dtype=float), kind="stable")


@dataclass(frozen=True)
class RequestTables:
    """The trace's requests in arrival order: ``prompt_tokens``, ``output_tokens`` and the
    sorted ``arrival_s`` (empty arrays for a trace without requests)."""

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt_tokens)

    @classmethod
    def from_trace(cls, trace: Trace) -> RequestTables:
        """Read the tables from ``trace.requests``."""
        r = trace.requests
        order = request_order(trace)
        return cls(
            prompt_tokens=r["prompt_tokens"].to_numpy(dtype=np.int64)[order],
            output_tokens=r["output_tokens"].to_numpy(dtype=np.int64)[order],
            arrival_s=np.sort(r["arrival_s"].to_numpy(dtype=float)),
        )
