"""The SimPy run: a calibrated scenario's workload (lengths, arrivals) served by the single-stream
or the continuous-batching server, each cycle's drafting outcome, the compiled per-request loops
of the learning policies, the target-only baseline behind speedup_vs_target_only, and the record
of the run and its figures. run/simulate (sim.engine.core) is the entry point; its output is a
trace with source 'sim'.

Public names load their module on first use (no import at package import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
    from sim.engine.core import SimResult, run, simulate
    from sim.engine.figures import latency_quantiles, share_within

_EXPORTS = {
    "SimResult": "sim.engine.core",
    "latency_quantiles": "sim.engine.figures",
    "run": "sim.engine.core",
    "share_within": "sim.engine.figures",
    "simulate": "sim.engine.core",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = [
    "SimResult",
    "latency_quantiles",
    "run",
    "share_within",
    "simulate",
]
