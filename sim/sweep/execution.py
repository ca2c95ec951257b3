"""Where a what-if grid's points run: in this process (``jobs = 1``), a pool of worker
processes (``jobs = N``), or a Dask distributed cluster (``cluster = "local"``, an address
``"tcp://HOST:PORT"``, or a ``distributed.Client`` already made).

The unit of work is :func:`run_points`, a plain function of plain arguments: a chunk of grid
points, each a (scenario dict, where) pair, and the sweep's trace; it returns each point's
(figures, warnings). Every backend runs that same function over the same points, and a point's
figures depend only on its scenario (its seed is the scenario's: common random numbers), so the
results are identical whichever backend runs them, in grid order. On a cluster the trace goes to
the workers once (``Client.scatter(..., broadcast=True)``), not with every chunk; points go in
chunks of several (a task per point would cost the scheduler more than a small point takes).
The caller's progress bar (``on_point``) counts points as their chunks complete.

A real cluster: start ``dask scheduler`` on one machine (it prints its address,
``tcp://HOST:8786``), then ``dask worker tcp://HOST:8786 --nworkers N --nthreads 1`` on every
machine that should work (each with this package installed, the same version, and the trace
file readable is not needed: the trace travels from the client), and run
``specsim whatif ... --cluster tcp://HOST:8786``. ``--cluster local`` starts a
``LocalCluster`` of ``--jobs`` worker processes (default: all cores) for the run.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from sim.engine.core import simulate
from sim.engine.figures import latency_quantiles
from sim.scenario import Scenario
from sim.sweep.replicate import replicate
from tracing.errors import SpecsimError
from tracing.trace import Trace

Point = tuple[dict[str, Any], str]  # a scenario as a dict, and where it came from
Outcome = tuple[dict[str, Any], list[str]]  # a point's figures and warnings

MAX_CHUNK = 256  # points per task, at most
CONNECT_TIMEOUT_S = 10.0  # waiting for a scheduler's address to answer
CHUNKS_PER_WORKER = 8  # tasks per worker, about (load balance vs per-task overhead)


def run_points(points: Sequence[Point], trace: Trace | None) -> list[Outcome]:
    """Simulate grid points (see the module docstring): each point's scenario is rebuilt from
    its dict, run (``[sim] replications`` of it when > 1), and its figures and warnings kept."""
    out: list[Outcome] = []
    for d, where in points:
        scenario = Scenario.from_dict(d, where=where)
        n = scenario.sim.replications
        result = replicate(scenario, n, trace) if n > 1 else simulate(scenario, trace)
        # the latency quantiles read goodput off any SLO (not among simulate's own figures)
        figures = {**result.figures, "latency_quantiles_s": latency_quantiles(result.trace.requests)}
        out.append((figures, result.warnings))
    return out


def run_grid(
    scenarios: Sequence[Scenario],
    trace: Trace | None,
    *,
    jobs: int | None = None,
    cluster: Any = None,
    on_point: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Every scenario's figures and warnings, in order, on the backend asked for;
    ``on_point()`` once per point as its chunk completes (a progress bar's advance)."""
    points: list[Point] = [(sc.to_dict(), sc.where) for sc in scenarios]
    if not points:
        return []
    done = on_point or (lambda: None)
    if cluster is not None:
        return _on_cluster(points, trace, cluster, jobs, done)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(points)))
    chunks = _chunks(points, workers)
    results: list[Outcome] = []
    if workers == 1:
        for chunk in chunks:
            results.extend(run_points(chunk, trace))
            for _ in chunk:
                done()
        return results
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(trace,)) as pool:
        for chunk, res in zip(chunks, pool.map(_pool_chunk, chunks), strict=True):
            results.extend(res)  # in grid order
            for _ in chunk:
                done()
    return results


def _chunks(points: list[Point], workers: int) -> list[list[Point]]:
    size = max(1, min(MAX_CHUNK, math.ceil(len(points) / (workers * CHUNKS_PER_WORKER))))
    return [points[i : i + size] for i in range(0, len(points), size)]


# --- a process pool ---------------------------------------------------------------------------

_TRACE: Trace | None = None  # the sweep's trace, set once per worker process


def _init_worker(trace: Trace | None) -> None:
    global _TRACE
    _TRACE = trace


def _pool_chunk(points: list[Point]) -> list[Outcome]:
    return run_points(points, _TRACE)


# --- a Dask cluster ---------------------------------------------------------------------------


def check_cluster(cluster: str) -> str:
    """``local`` or ``tcp://HOST:PORT`` (also ``tls://``), else a SpecsimError."""
    if cluster == "local" or (cluster.startswith(("tcp://", "tls://")) and ":" in cluster[6:]):
        return cluster
    raise SpecsimError(f"--cluster {cluster}: expected local or tcp://HOST:PORT")


@contextmanager
def _client(cluster: Any, jobs: int | None, points: int) -> Iterator[Any]:
    """A ``distributed.Client``: the one given, a fresh LocalCluster's, or one connected to a
    scheduler's address (closed afterwards unless it was given)."""
    from distributed import Client, LocalCluster

    if isinstance(cluster, Client):
        yield cluster
        return
    check_cluster(cluster)
    if cluster == "local":
        workers = max(1, min(jobs or os.cpu_count() or 1, points))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR) as local, \
                Client(local) as client:
            yield client
        return
    try:
        client = Client(cluster, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        raise SpecsimError(f"--cluster {cluster}: cannot connect to a Dask scheduler there "
                           f"({exc})") from None
    try:
        yield client
    finally:
        client.close()


def _on_cluster(
    points: list[Point], trace: Trace | None, cluster: Any, jobs: int | None,
    done: Callable[[], None],
) -> list[Outcome]:
    from distributed import as_completed

    with _client(cluster, jobs, len(points)) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        chunks = _chunks(points, workers)
        shared = client.scatter(trace, broadcast=True) if trace is not None else None
        futures = client.map(run_points, chunks, trace=shared, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[list[Outcome] | None] = [None] * len(chunks)
        for future in as_completed(futures):
            i = index[future.key]
            results[i] = future.result()  # a worker's SpecsimError is raised here
            for _ in chunks[i]:
                done()
    return [outcome for chunk in results if chunk is not None for outcome in chunk]
