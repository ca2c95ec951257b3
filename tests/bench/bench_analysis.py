"""Metrics and diagnosis speed on a large trace, and detection accuracy on planted traces,
measured side by side in one run.

    python tests/bench/bench_analysis.py [--cycles 1000000] [--seeds 10]

1. ``compute_metrics`` on a ~1,000,000-cycle simulated trace with per-position probabilities,
   as a ratio to ``tracing.summarize`` of the same trace (goal: seconds in absolute terms).
2. ``diagnose(whatif=False)`` and ``diagnose(whatif=True)`` on the same trace, as ratios to
   ``compute_metrics``.
3. Detection: over ``--seeds`` seeds, how often each planted kind is the top finding and how
   often the healthy run raises a medium/high finding.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.diagnose import diagnose
from analysis.metrics import compute_metrics
from analysis.planted import PLANTED_KINDS, healthy_trace, planted_trace
from sim import Scenario, simulate
from tracing import Trace, summarize


def big_trace(cycles: int) -> Trace:
    """An over-speculating run (alpha 0.5, tau 10) with logged draft/target probabilities."""
    requests = max(1, cycles // 280)
    scenario = Scenario.from_dict({
        "workload": {"requests": requests, "output_tokens": 600},
        "acceptance": {"model": "iid", "alpha": 0.5},
        "policy": {"name": "fixed", "tau": 10},
    })
    trace = simulate(scenario, seed=0).trace
    tau = trace.cycles["tau"].to_numpy()
    rng = np.random.default_rng(0)
    offsets: Any = pa.array(np.concatenate([[0], np.cumsum(tau)]).astype(np.int32))
    n = int(tau.sum())
    for name, low in (("draft_prob", 0.5), ("target_prob", 0.2)):
        flat: Any = pa.array(rng.uniform(low, 1.0, n))
        values = pa.ListArray.from_arrays(offsets, flat)
        trace.cycles[name] = pd.Series(pd.arrays.ArrowExtensionArray(values))
    trace.meta.temperature = 0.8
    return trace


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()

    trace = big_trace(args.cycles)
    m = compute_metrics(trace)
    t_sum = timed(lambda: summarize(trace))
    t_met = timed(lambda: compute_metrics(trace))
    t_diag = timed(lambda: diagnose(trace, whatif=False, metrics=m))
    t_what = timed(lambda: diagnose(trace, whatif=True, metrics=m), repeat=1)
    print(f"trace: {len(trace.requests)} requests, {len(trace.cycles)} cycles (with probabilities)")
    print(f"summarize            {t_sum:7.3f} s   1.00x")
    print(f"compute_metrics      {t_met:7.3f} s  {t_met / t_sum:5.1f}x summarize")
    print(f"diagnose(no what-if) {t_diag:7.3f} s  {t_diag / t_met:5.2f}x compute_metrics")
    print(f"diagnose(what-if)    {t_what:7.3f} s  {t_what / t_met:5.2f}x compute_metrics")

    print(f"\ndetection over {args.seeds} seeds (top finding == planted kind, level high):")
    for kind in PLANTED_KINDS:
        hits = 0
        for seed in range(args.seeds):
            findings = diagnose(planted_trace(kind, seed=seed), whatif=False)
            hits += bool(findings) and findings[0].kind == kind and findings[0].level == "high"
        print(f"  {kind:24s} {hits}/{args.seeds}")
    alarms = sum(
        any(f.level != "low" for f in diagnose(healthy_trace(seed=s), whatif=False))
        for s in range(args.seeds)
    )
    print(f"  healthy: medium/high false alarms {alarms}/{args.seeds}")


if __name__ == "__main__":
    main()
