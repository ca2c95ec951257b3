"""Workloads: the requests a simulation serves -- their lengths and arrival times.

Lengths: a fixed count, a distribution (lognormal with the given *mean* and log-space sigma,
uniform integers, or a weighted choice), or ``"trace"``: the trace's requests in arrival order,
cycling when more requests are asked for than the trace holds (so replaying a trace serves its
requests exactly). Arrivals: ``closed`` (``concurrency`` users, each sending its next request when the
previous one completes -- times are decided by the simulation, so they are NaN here), ``poisson``
at ``rate_per_s``, ``trace`` (the trace's arrival times, shifted so the first is 0), or ``file``
(a real workload's arrivals and lengths: :mod:`sim.calibrate.arrivals`). What a trace says comes
from calibration (:class:`sim.calibrate.requests.RequestTables`); this module never reads one.
The SimPy side: :func:`arrivals` (open workloads) and :class:`Closer` (closed-loop users) put
request ids into the server's queue.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from sim.calibrate.arrivals import ArrivalTable
from sim.calibrate.requests import RequestTables
from sim.engine.figures import Log
from sim.scenario import Scenario, TokenSpec
from tracing.errors import SpecsimError


@dataclass
class Workload:
    """Per-request arrays: ``arrival_s`` (NaN for closed), ``prompt_tokens``, ``output_tokens``."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    closed: bool
    concurrency: int
    trace_row: np.ndarray | None = None  # the trace request (arrival order) each one replays
    # speed of each request's model passes relative to the cost model (None: all 1); see
    # sim.calibrate.costs.request_speeds
    speed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prompt_tokens)


def _lengths(
    spec: TokenSpec,
    n: int,
    rng: np.random.Generator,
    tables: RequestTables | None,
    column: str,
    where: str,
    file: ArrivalTable | None = None,
) -> np.ndarray:
    if isinstance(spec, int):
        return np.full(n, spec, dtype=np.int64)
    if spec == "file":
        if file is None:
            raise SpecsimError(f'{where}: [workload] {column} = "file" needs arrival = "file"')
        return np.asarray(getattr(file, column)[:n], dtype=np.int64)
    if spec == "trace":
        if tables is None or len(tables) == 0:
            raise SpecsimError(
                f'{where}: [workload] {column} = "trace" needs a trace with requests'
            )
        src = getattr(tables, column)
        return np.resize(src, n).astype(np.int64)
    assert isinstance(spec, dict)
    dist: dict[str, Any] = spec
    kind = dist["dist"]
    if kind == "lognormal":
        sigma = float(dist["sigma"])
        mu = math.log(float(dist["mean"])) - sigma * sigma / 2.0  # so that E[X] = mean
        x = rng.lognormal(mu, sigma, n)
        x = np.clip(x, dist.get("min", 1), dist.get("max", np.inf))
        values = np.maximum(1, np.rint(x)).astype(np.int64)
    elif kind == "uniform":
        values = rng.integers(int(dist["low"]), int(dist["high"]) + 1, n)
    else:
        options = np.asarray(dist["values"], dtype=np.int64)
        weights = dist.get("weights")
        p = None if weights is None else np.asarray(weights, float) / float(np.sum(weights))
        values = rng.choice(options, size=n, p=p)
    return np.asarray(values, dtype=np.int64)


def build_workload(
    scenario: Scenario,
    rng: np.random.Generator,
    tables: RequestTables | None = None,
    file: ArrivalTable | None = None,
) -> Workload:
    """Draw the scenario's requests from the one seeded generator of the run (``tables``: the
    trace's requests, ``file``: the arrivals file's, both from calibration)."""
    w, where = scenario.workload, scenario.where
    n = w.requests
    if w.arrival == "file":
        if file is None:
            raise SpecsimError(f'{where}: [workload] arrival = "file": the file was not loaded')
        n = len(file)  # calibration took the first `requests` (0: all) from start_s
        arrival = file.arrival_s[:n]
    elif w.arrival == "trace":
        if tables is None or len(tables) == 0:
            raise SpecsimError(f'{where}: [workload] arrival = "trace" needs a trace with requests')
        src = tables.arrival_s
        if n > len(src):
            raise SpecsimError(
                f'{where}: [workload] requests = {n}: arrival = "trace" replays at most the '
                f"trace's {len(src)} requests"
            )
        arrival = src[:n] - src[0]
    elif w.arrival == "poisson":
        arrival = np.cumsum(rng.exponential(1.0 / w.rate_per_s, n))
    else:
        arrival = np.full(n, np.nan)
    prompt = _lengths(w.prompt_tokens, n, rng, tables, "prompt_tokens", where, file)
    output = _lengths(w.output_tokens, n, rng, tables, "output_tokens", where, file)
    rows = None
    if tables is not None and len(tables):
        rows = np.arange(n) % len(tables)
    return Workload(arrival, prompt, output, w.arrival == "closed", w.concurrency, rows)


def arrivals(
    env: simpy.Environment, queue: simpy.Store, workload: Workload, log: Log
) -> Generator[simpy.Event, Any, None]:
    """Open workloads: put each request in the queue at its arrival time."""
    for rid, t in enumerate(workload.arrival_s.tolist()):
        if t > env.now:
            yield env.timeout(t - env.now)
        log.arrival_s[rid] = env.now
        queue.put(rid)
    log.backlog_at_last_arrival = len(queue.items)


class Closer:
    """Closed workloads: when a request completes, the next one arrives."""

    def __init__(self, env: simpy.Environment, queue: simpy.Store, workload: Workload, log: Log):
        self.env, self.queue, self.log, self.n = env, queue, log, len(workload)
        self.next_id = 0
        self.closed = workload.closed
        if workload.closed:
            for _ in range(min(workload.concurrency, self.n)):
                self.release()

    def release(self) -> None:
        """A request completed: the user sends its next one (closed workloads only)."""
        if self.closed and self.next_id < self.n:
            self.log.arrival_s[self.next_id] = self.env.now
            self.queue.put(self.next_id)
            self.next_id += 1
