"""Simulator speed, as ratios measured side by side in one run.

1. Simulated cycles per second of ``sim.simulate`` (in process: no CLI start-up) over SimPy's
   bare event rate (a process doing nothing but ``yield env.timeout(1)``), for the single-stream
   server with a fixed tau, with the heuristic and the adaptive policies, and for continuous
   batching of 8 with its target-only baseline (``speedup_vs_target_only``) included in the time.
   Goals: fixed >= 1.0, heuristic / adaptive >= 0.5, batch of 8 >= 0.25. The machine is shared:
   both rates are per second of this process's CPU time (``time.process_time``), each case is
   measured between two runs of the bare loop (its ratio is to their mean), cases and repeats
   interleave, and the ratio printed is the median over repeats, so contention cancels.
2. A what-if grid (default 10,000 points of a small scenario): points per second with
   jobs = 1, jobs = 2 and a 2-worker Dask ``LocalCluster`` (``--cluster local``); the three
   tables must be equal.

    python tests/bench/bench_sim.py [--requests N] [--repeats R] [--grid-points P | --no-grid]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's sim, not another's

from sim import Scenario, simulate
from sim.sweep.whatif import sweep

GOALS = {"stream, fixed tau=4": 1.0, "stream, heuristic": 0.5, "stream, adaptive": 0.5,
         "batch 8, fixed tau=4 + baseline": 0.25}


def bare_event_rate(events: int = 200_000) -> float:
    """Events per second of a SimPy process doing nothing but ``yield env.timeout(1)``."""
    env = simpy.Environment()

    def loop(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        for _ in range(events):
            yield env.timeout(1.0)

    env.process(loop(env))
    t0 = time.process_time()
    env.run()
    return events / (time.process_time() - t0)


def cycle_rate(scenario: Scenario) -> tuple[float, int]:
    """Simulated cycles per second of wall time of one ``simulate`` and its cycles."""
    t0 = time.process_time()
    result = simulate(scenario)
    elapsed = time.process_time() - t0
    cycles = len(result.trace.cycles)
    return cycles / elapsed, cycles


def scenario(requests: int, policy: dict[str, object], max_batch: int = 1,
             baseline: bool = False) -> Scenario:
    """Poisson chat-like load with i.i.d. acceptance 0.75."""
    return Scenario.from_dict({
        "workload": {"requests": requests, "prompt_tokens": 128, "output_tokens": 128,
                     "arrival": "poisson", "rate_per_s": 0.3 * max_batch},
        "acceptance": {"alpha": 0.75},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.002},
        "policy": policy,
        "server": {"max_batch": max_batch},
        "sim": {"baseline": baseline},
    })


def bench_servers(requests: int, repeats: int) -> None:
    cases = {
        "stream, fixed tau=4": scenario(requests, {"name": "fixed", "tau": 4}),
        "stream, heuristic": scenario(requests, {"name": "heuristic"}),
        "stream, adaptive": scenario(requests, {"name": "adaptive"}),
        "batch 8, fixed tau=4 + baseline": scenario(requests, {"name": "fixed", "tau": 4}, 8,
                                                    baseline=True),
    }
    ratios: dict[str, list[float]] = {name: [] for name in cases}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    bares: list[float] = []
    cycles: dict[str, int] = {}
    simulate(cases["stream, heuristic"])  # warm imports and caches
    for _ in range(repeats):
        for name, sc in cases.items():  # interleaved: bare loop, the case, bare loop again
            before = bare_event_rate()
            rate, cycles[name] = cycle_rate(sc)
            bare = (before + bare_event_rate()) / 2.0
            bares.append(bare)
            rates[name].append(rate)
            ratios[name].append(rate / bare)
    print(f"SimPy bare event rate: {statistics.median(bares):,.0f} events/s "
          f"(median of {len(bares)})")
    for name in cases:
        ratio = statistics.median(ratios[name])
        goal = GOALS[name]
        print(f"{name:32s} {cycles[name]:>8,d} cycles  {statistics.median(rates[name]):>11,.0f} "
              f"cycles/s  ratio to bare SimPy {ratio:5.2f}  (goal >= {goal}: "
              f"{'met' if ratio >= goal else 'NOT met'}; {repeats} interleaved repeats, "
              f"range {min(ratios[name]):.2f}-{max(ratios[name]):.2f})")


def bench_grid(points: int, requests: int) -> None:
    base = Scenario.from_dict({
        "workload": {"requests": requests, "prompt_tokens": 64, "output_tokens": 32},
        "acceptance": {"alpha": 0.75},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.002},
        "policy": {"name": "fixed", "tau": 4},
    })
    side = max(1, round(points**0.5))
    vary: dict[str, list[Any]] = {
        "latency.draft_step_s": [round(0.0005 + 0.00001 * i, 6) for i in range(side)],
        "acceptance.alpha": [round(0.3 + 0.6 * i / max(1, points // side - 1), 6)
                             for i in range(points // side)],
    }
    n = side * (points // side)
    tables = {}
    for label, kwargs in (("jobs=1", {"jobs": 1}), ("jobs=2", {"jobs": 2}),
                          ("2-worker LocalCluster", {"cluster": "local", "jobs": 2})):
        t0 = time.perf_counter()
        result = sweep(base, vary, **kwargs)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
        tables[label] = result.table
        print(f"what-if grid of {n:,d} points ({requests} requests each), {label:22s} "
              f"{elapsed:7.1f} s  {n / elapsed:8.1f} points/s")
    first = next(iter(tables.values()))
    print("same table under all three:", all(t.equals(first) for t in tables.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid-points", type=int, default=10_000)
    parser.add_argument("--grid-requests", type=int, default=8)
    parser.add_argument("--no-grid", action="store_true", help="skip the what-if grid")
    args = parser.parse_args()
    bench_servers(args.requests, args.repeats)
    if not args.no_grid:
        bench_grid(args.grid_points, args.grid_requests)


if __name__ == "__main__":
    main()
