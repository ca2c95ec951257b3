"""Capacity: the highest Poisson arrival rate at which a configuration meets a p95 SLO.

``whatif --find-capacity --slo-p95-ms X`` answers the question capacity planning asks. For
each decision point of the grid (every ``--vary`` key is a decision key: the rate is what is
searched), :func:`find_capacity` bisects ``workload.rate_per_s`` on a log scale:

- a rate *passes* when the run's p95 is at most the SLO, no request is cut short and the verify
  passes keep to ``[budget]`` (:func:`sim.sweep.whatif.within_budget`), and the queue is not
  ``overloaded``;
- the bracket starts at the rate one request at a time could serve (requests over the closed
  run's makespan), doubled or halved until one rate passes and the next fails; then
  :data:`STEPS` halvings of the bracket's log width (the result is within 2^(1/2^STEPS) of
  the boundary the runs draw: ~0.3% with 8 steps);
- every run of a point uses the same seed (common random numbers), so the search is
  deterministic.

The interval: the same search on each of the ``draws`` of :mod:`sim.sweep.intervals` (a new seed and
a bootstrap resample of the trace, refitted) gives one capacity per draw; ``ci95`` is the
estimate times ``exp(+- t * sd)`` of their logs (never below 0). ``rate_per_s`` is 0 when even
the lowest rate tried fails the SLO.
"""

from __future__ import annotations

import math
from typing import Any

from sim.engine.core import simulate
from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

STEPS = 8  # halvings of the bracket's log width
BRACKET = 16  # doublings / halvings tried to bracket the boundary
MIN_REQUESTS = 50  # a Poisson run of fewer requests has too loose a p95 to search on


def _passes(scenario: Scenario, trace: Trace | None, rate: float, slo_s: float,
            seed: int) -> bool:
    from sim.sweep.whatif import within_budget

    sc = scenario.with_overrides({"workload.rate_per_s": rate})
    figures = simulate(sc, trace, seed=seed).figures
    return bool(figures["latency_s"]["p95"] <= slo_s and within_budget(sc, figures)
                and not figures.get("overloaded"))


def start_rate(scenario: Scenario, trace: Trace | None, seed: int) -> float:
    """Requests per second of the scenario run closed, one request at a time."""
    closed = scenario.with_overrides({"workload.concurrency": 1})
    figures = simulate(closed, trace, seed=seed).figures
    mean = float(figures["latency_s"]["mean"])
    return 1.0 / mean if mean > 0 else 1.0


def bisect_rate(scenario: Scenario, trace: Trace | None, slo_p95_ms: float, *,
                seed: int, start: float | None = None) -> float:
    """The highest rate (requests/s) that passes (see the module docstring); 0 if none does."""
    slo_s = slo_p95_ms / 1e3
    rate = start if start is not None else start_rate(scenario, trace, seed)
    ok = _passes(scenario, trace, rate, slo_s, seed)
    lo, hi = (rate, None) if ok else (None, rate)
    for _ in range(BRACKET):
        if lo is not None and hi is not None:
            break
        if lo is not None:
            nxt = lo * 2.0
            if _passes(scenario, trace, nxt, slo_s, seed):
                lo = nxt
            else:
                hi = nxt
        else:
            assert hi is not None
            nxt = hi / 2.0
            if _passes(scenario, trace, nxt, slo_s, seed):
                lo = nxt
            else:
                hi = nxt
    if lo is None:
        return 0.0
    if hi is None:
        return lo  # passes even at the highest rate tried
    for _ in range(STEPS):
        mid = math.sqrt(lo * hi)
        if _passes(scenario, trace, mid, slo_s, seed):
            lo = mid
        else:
            hi = mid
    return lo


def find_capacity(
    base: Scenario,
    vary: dict[str, list[Any]],
    *,
    trace: Trace | None,
    slo_p95_ms: float,
    draws: int = 0,
    jobs: int | None = 1,
) -> list[dict[str, Any]]:
    """``capacity``: [{``vary``, ``rate_per_s``, ``ci95``, ``draws_rate_per_s``}] per decision
    point of the grid of ``vary`` over ``base``; the searches (one per point and draw) run in
    ``jobs`` worker processes (None: all cores), each deterministic, so the answer does not
    depend on ``jobs``."""
    from sim.sweep.decide import is_condition
    from sim.sweep.intervals import interval, make_draws
    from sim.sweep.whatif import check_policy_keys, grid

    if slo_p95_ms is None or slo_p95_ms <= 0:
        raise SpecsimError("--find-capacity: needs --slo-p95-ms X (> 0)")
    conditions = [k for k in vary if is_condition(k)]
    if conditions:
        raise SpecsimError(f"--find-capacity: --vary {conditions[0]}: a workload key; the "
                           "search sets the arrival rate itself (vary decision keys only)")
    check_policy_keys(base, vary)
    if isinstance(base.workload.requests, int) and base.workload.requests < MIN_REQUESTS \
            and base.workload.output_tokens != "trace":
        base = base.with_overrides({"workload.requests": MIN_REQUESTS})
    seed = base.workload.seed
    samples = make_draws(base, trace, draws, seed=seed) if draws else []
    cells = grid(base, vary) if vary else [({}, base)]
    tasks: list[tuple[Scenario, Trace | None, float, int, float]] = []
    for point, scenario in cells:
        start = start_rate(scenario, trace, seed)
        tasks.append((scenario, trace, slo_p95_ms, seed, start))
        for d in samples:
            try:
                sc = d.scenario.with_overrides(point) if point else d.scenario
            except SpecsimError:
                sc = None
            tasks.append((sc, d.trace, slo_p95_ms, d.seed, start))  # type: ignore[arg-type]
    rates = _run(tasks, jobs)
    out = []
    per = 1 + len(samples)
    for k, (point, _) in enumerate(cells):
        rate = rates[k * per] or 0.0
        per_draw = [r for r in rates[k * per + 1:(k + 1) * per] if r is not None]
        ci = interval(rate, [r for r in per_draw if r > 0], positive=True) if rate > 0 else None
        out.append({"vary": point, "rate_per_s": rate, "ci95": ci,
                    "draws_rate_per_s": per_draw})
    return out


def _task(task: tuple[Scenario | None, Trace | None, float, int, float]) -> float | None:
    scenario, trace, slo_p95_ms, seed, start = task
    if scenario is None:
        return None
    try:
        return bisect_rate(scenario, trace, slo_p95_ms, seed=seed, start=start)
    except SpecsimError:
        return None  # a draw the simulator refused: left out of the interval


def _run(tasks: list[Any], jobs: int | None) -> list[float | None]:
    """Each search, in order: here (``jobs`` 1) or in a pool of worker processes."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if workers == 1:
        return [_task(t) for t in tasks]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_task, tasks))


__all__ = ["BRACKET", "MIN_REQUESTS", "STEPS", "bisect_rate", "find_capacity", "start_rate"]
