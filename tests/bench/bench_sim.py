"""Simulator speed, as ratios measured side by side in one run.

1. Simulated cycles per second / SimPy's bare event rate (a process looping on
   ``env.timeout``), for the single-stream server with a fixed tau (vectorized plan), with a
   dynamic policy (one SimPy step per cycle) and for continuous batching. Goal: >= 0.5.
2. A 100-point what-if grid with jobs = 1 vs jobs = os.cpu_count(). Goal: near-linear speed-up.

    python tests/bench/bench_sim.py [--requests N] [--grid-requests N]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import simpy

from sim import Scenario, simulate
from sim.whatif import sweep


def bare_event_rate(events: int = 1_000_000) -> float:
    """Events per second of a SimPy process doing nothing but ``yield env.timeout(1)``."""
    env = simpy.Environment()

    def loop(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        for _ in range(events):
            yield env.timeout(1.0)

    env.process(loop(env))
    t0 = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - t0)


def cycle_rate(scenario: Scenario) -> tuple[float, int]:
    """Simulated cycles per second of wall time (best of 3) and the cycles of one run."""
    best = float("inf")
    cycles = 0
    for _ in range(3):
        t0 = time.perf_counter()
        result = simulate(scenario)
        best = min(best, time.perf_counter() - t0)
        cycles = len(result.trace.cycles)
    return cycles / best, cycles


def scenario(requests: int, policy: dict[str, object], max_batch: int = 1) -> Scenario:
    """Poisson chat-like load with i.i.d. acceptance 0.75."""
    return Scenario.from_dict({
        "workload": {"requests": requests, "prompt_tokens": 128, "output_tokens": 128,
                     "arrival": "poisson", "rate_per_s": 0.3 * max_batch},
        "acceptance": {"alpha": 0.75},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.002},
        "policy": policy,
        "server": {"max_batch": max_batch},
        "sim": {"baseline": False},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--grid-requests", type=int, default=400)
    args = parser.parse_args()

    bare = max(bare_event_rate() for _ in range(3))
    print(f"SimPy bare event rate: {bare:,.0f} events/s")
    cases = {
        "stream, fixed tau=4": scenario(args.requests, {"name": "fixed", "tau": 4}),
        "stream, heuristic": scenario(args.requests, {"name": "heuristic"}),
        "batch 8, fixed tau=4": scenario(args.requests, {"name": "fixed", "tau": 4}, 8),
    }
    for name, sc in cases.items():
        rate, cycles = cycle_rate(sc)
        print(f"{name:22s} {cycles:>8,d} cycles  {rate:>12,.0f} cycles/s  "
              f"ratio to bare SimPy {rate / bare:6.2f}  (goal >= 0.5)")

    base = scenario(args.grid_requests, {"name": "fixed", "tau": 4})
    vary: dict[str, list[Any]] = {"policy.tau": list(range(1, 11)),
            "acceptance.alpha": [round(0.5 + 0.05 * i, 2) for i in range(10)]}
    jobs = os.cpu_count() or 1
    t0 = time.perf_counter()
    serial = sweep(base, vary, jobs=1)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    parallel = sweep(base, vary, jobs=jobs)
    t_parallel = time.perf_counter() - t0
    same = serial.table.equals(parallel.table)
    print(f"what-if grid of {len(serial.points)} points ({args.grid_requests} requests each): "
          f"jobs=1 {t_serial:.2f} s, jobs={jobs} {t_parallel:.2f} s, speed-up "
          f"{t_serial / t_parallel:.2f}x on {jobs} cores (efficiency "
          f"{t_serial / t_parallel / jobs:.0%}); same table: {same}")


if __name__ == "__main__":
    main()
