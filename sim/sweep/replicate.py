"""Replications: one scenario run under ``n`` seeds, its figures averaged with confidence intervals.

Replication ``i`` runs with seed ``s + i`` where ``s`` is ``seed`` or the scenario's
``[workload] seed``, so the same call always gives the same figures.

Figures are the mean across replications of every number (booleans: true if any replication
said so; lists: element-wise mean when all have the same length). ``latency_s`` carries
``p50_ci`` and ``p95_ci``: a Student-t interval on the per-replication percentile,
``mean +- t(1 - (1 - confidence) / 2, n - 1) * sd / sqrt(n)``. Each replication's percentile is
one i.i.d. draw of the run-level statistic (the classic method of independent replications), so
the interval covers the percentile of a run of this many requests; it is ``None`` with n = 1.
``replications`` records n, the seeds, the confidence level and the per-replication values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from sim.engine.core import SimResult, simulate
from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

CI_KEYS = ("p50", "p95")


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval on a mean of ``n`` values."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (0 for a single value)."""
        return (self.hi - self.lo) / 2.0


def t_interval(values: list[float] | np.ndarray, confidence: float = 0.95, *,
               positive: bool = False) -> Interval | None:
    """Student-t interval on the mean of ``values`` (None for fewer than two values).

    ``positive`` (a latency): the interval is made on a log scale around the mean -- ``mean *
    exp(+- t * sd(log values) / sqrt(n))`` -- so it is never below 0, however few the values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return None
    mean = float(x.mean())
    t = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, x.size - 1))
    if positive and mean > 0 and bool(np.all(x > 0)):
        half = t * float(np.log(x).std(ddof=1)) / math.sqrt(x.size)
        return Interval(mean, mean * math.exp(-half), mean * math.exp(half), int(x.size))
    sd = float(x.std(ddof=1))
    half = t * sd / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size))


def replicate(
    scenario: Scenario,
    n: int,
    trace: Trace | None = None,
    *,
    seed: int | None = None,
    confidence: float = 0.95,
    progress: bool = False,
) -> SimResult:
    """Run ``scenario`` with seeds ``seed, seed + 1, ...`` and combine the figures.

    Returns the first replication's trace, the combined figures (with ``latency_s.p50_ci`` /
    ``p95_ci``) and the warnings of all replications (each once).
    """
    if n < 1:
        raise SpecsimError(f"replications = {n}: must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise SpecsimError(f"confidence = {confidence}: must be in (0, 1)")
    first_seed = scenario.workload.seed if seed is None else seed
    seeds = [first_seed + i for i in range(n)]
    results = [simulate(scenario, trace, seed=s, progress=progress and n == 1) for s in seeds]
    figures = combine_figures([r.figures for r in results])
    per_rep: dict[str, list[float]] = {}
    for key in CI_KEYS:
        values = [float(r.figures["latency_s"][key]) for r in results]
        per_rep[f"latency_s.{key}"] = values
        interval = t_interval(values, confidence, positive=True)
        figures["latency_s"][f"{key}_ci"] = None if interval is None else [interval.lo, interval.hi]
    figures["seed"] = first_seed
    figures["replications"] = {
        "n": n,
        "seeds": seeds,
        "confidence": confidence,
        "method": "student-t across replications",
        "values": per_rep,
    }
    warnings: list[str] = []
    for r in results:
        warnings.extend(w for w in r.warnings if w not in warnings)
    return SimResult(figures, results[0].trace, warnings)


def combine_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several replications' figures, key by key (see the module docstring)."""
    if not runs:
        raise ValueError("no figures to combine")
    return {key: _combine([r.get(key) for r in runs]) for key in runs[0]}


def _combine(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, bool):
        return any(bool(v) for v in values)
    if isinstance(first, dict):
        if not all(isinstance(v, dict) for v in values):
            return first
        return {k: _combine([v.get(k) for v in values]) for k in first}
    if isinstance(first, int | float) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        if all(isinstance(v, int) and v == first for v in values):
            return first  # counts every replication agrees on stay integers
        return float(np.mean(values))
    same_lists = all(isinstance(v, list) and len(v) == len(first) for v in values)
    if same_lists and all(isinstance(x, int | float) for v in values for x in v):
        return [float(x) for x in np.mean(np.asarray(values, dtype=float), axis=0)]
    return first
