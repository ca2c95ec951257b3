"""The target-only baseline behind ``speedup_vs_target_only``: the mean latency of the same
workload decoded without speculation on the same server (no budget), charged as a
``target_only`` run is (``CostModel.for_target_only``); None, with a warning, when that baseline
is itself overloaded.

* Single stream: a request's target-only service is known in closed form (its prefill, one
  verify pass per output token, the context growing by one per pass, the
  per-cycle overhead, at the request's speed), and the latencies follow from Lindley's recursion
  (:func:`target_only_latencies`).
* Continuous batching: :func:`batch_target_only_latencies` steps the batch server's own rules
  with tau = 0 -- admission from the head of the queue at each step, prefill paid in the step that
  admits, one verify pass over the batch (``CostModel.batch_step``) -- as a plain loop over steps (every request emits one
  token per step, so there is nothing to draw). It reproduces what :mod:`sim.engine.server` would give
  for a ``target_only`` run of the same workload bit for bit (the clock is added up in the same
  order); tests/test_sim_baseline.py checks that.

Computed once per workload: the result is kept by the workload's content (arrivals, lengths,
speeds), the target's costs and the server, so what-if points that change only the policy, the
draft, acceptance or the budget, and replications that draw the same workload, share it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from collections import OrderedDict

import numpy as np

from sim.engine.figures import is_overloaded
from sim.engine.workload import Workload
from sim.models.latency import CostModel
from sim.scenario import Scenario

CACHE_SIZE = 256
_cache: OrderedDict[bytes, tuple[float | None, str | None]] = OrderedDict()


OVERLOADED = ("speedup_vs_target_only is null: the target-only baseline is overloaded at this "
              "load (its queue grows without bound)")


def baseline_mean_latency(
    scenario: Scenario, workload: Workload, costs: CostModel
) -> tuple[float | None, str | None]:
    """Mean latency of target-only decoding of ``workload`` on ``scenario``'s server, charged
    ``costs`` (the run's, as a target-only run pays them: ``CostModel.for_target_only``); None,
    with a warning, when that baseline is itself overloaded -- its mean would only say how many
    requests were simulated. Cached (see the module docstring)."""
    max_batch = scenario.server.max_batch
    key = _key(workload, costs, max_batch)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    if max_batch == 1:
        n = workload.output_tokens.astype(float)
        p = workload.prompt_tokens.astype(float)
        speed = 1.0 if workload.speed is None else workload.speed
        service = speed * (
            costs.prefill_many(workload.prompt_tokens)
            + n * costs.verify_s(1)
            + costs.context_s_per_token * (n * p + n * (n - 1) / 2.0)
        ) + n * costs.overhead_s
        lat = target_only_latencies(
            workload.arrival_s, workload.closed, workload.concurrency, service
        )
        backlog = 0
        if not workload.closed and lat.size:  # requests not yet started at the last arrival
            start = workload.arrival_s + lat - service
            backlog = int(np.count_nonzero(start > workload.arrival_s.max()))
    else:
        lat, backlog = batch_target_only_latencies(workload, costs, max_batch)
    overloaded = is_overloaded(not workload.closed, backlog, lat.size, max_batch)
    value: tuple[float | None, str | None] = (
        (None, OVERLOADED) if overloaded else (float(lat.mean()), None))
    _cache[key] = value
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def _key(workload: Workload, costs: CostModel, max_batch: int) -> bytes:
    """What the baseline depends on: the workload's arrays, the costs but the draft's (a
    target-only run never drafts), the server."""
    h = hashlib.blake2b(digest_size=20)
    for arr in (workload.arrival_s, workload.prompt_tokens, workload.output_tokens,
                workload.speed if workload.speed is not None and max_batch == 1 else None):
        h.update(b"-" if arr is None else np.ascontiguousarray(arr).tobytes())
    target = dataclasses.replace(costs, draft_step_s=0.0, draft_on_device=False)
    h.update(pickle.dumps((workload.closed, workload.concurrency, max_batch, target)))
    return h.digest()


def target_only_latencies(
    arrival: np.ndarray,
    closed: bool,
    concurrency: int,
    service_s: np.ndarray,
) -> np.ndarray:
    """Latencies of a single FIFO server (Lindley's recursion), per request in order.

    ``arrival`` is ignored for closed workloads: request i arrives when request i - concurrency
    completes (the first ``concurrency`` at 0).
    """
    n = service_s.size
    end = np.zeros(n)
    arr = np.zeros(n)
    free = 0.0
    services = service_s.tolist()
    arrivals = arrival.tolist()
    for i in range(n):
        a = (end[i - concurrency] if i >= concurrency else 0.0) if closed else arrivals[i]
        arr[i] = a
        free = max(free, a) + services[i]
        end[i] = free
    return end - arr


def batch_target_only_latencies(
    workload: Workload, costs: CostModel, max_batch: int
) -> tuple[np.ndarray, int]:
    """Latencies of target-only continuous batching of ``workload`` (see the module docstring)
    and the backlog at the last arrival (requests arrived and not admitted then; the batch
    server's ``backlog_at_last_arrival``).

    Requests arrive and are admitted in id order: an open workload's at its arrival times (the
    clock stepping from one arrival to the next, as SimPy's does), a closed one's when a user's
    previous request completes (the first ``concurrency`` at 0).
    """
    n = len(workload)
    prompts, outputs = workload.prompt_tokens.tolist(), workload.output_tokens.tolist()
    arr = [0.0] * n
    end = [0.0] * n
    closed = workload.closed
    if closed:
        released = min(workload.concurrency, n)
    else:
        now = 0.0
        for i, a in enumerate(workload.arrival_s.tolist()):
            if a > now:
                now = now + (a - now)
            arr[i] = now
        released = n
    k, ovh = costs.context_s_per_token, costs.overhead_s
    # the verify pass of b rows scoring one token each (costs.batch_step with every tau 0)
    def verify_s(b: int, context: int) -> float:
        return costs.batch_step([0] * b, context)[1] if costs.batch_table else costs.verify_s(
            b, b, context)

    flat = [0.0] + [verify_s(b, 0) for b in range(1, max_batch + 1)]
    act: list[int] = []  # admitted requests, in admission order
    done_at: list[int] = []  # the step after which each has emitted all its tokens
    context = 0  # sum of the active requests' contexts (with a context cost)
    head, step, t = 0, 0, 0.0
    next_done = 0
    admitted = [0.0] * n  # when each was admitted
    idle_at_last = False  # the server was waiting for the last arrival (it took it at once)
    while head < n or act:
        if not act and not closed and arr[head] > t:
            t = arr[head]  # idle until the next arrival
            idle_at_last = head == n - 1
        now, prefill = t, 0.0
        while len(act) < max_batch and head < released and arr[head] <= now:
            prefill += costs.prefill_s(prompts[head])
            admitted[head] = now
            act.append(head)
            done_at.append(step + max(1, outputs[head]))
            context += prompts[head]
            head += 1
            next_done = min(done_at)
        b = len(act)
        t = now + (prefill + (verify_s(b, context) if k else flat[b]) + ovh)
        step += 1
        context += b
        if step >= next_done:
            keep = []
            for i, rid in enumerate(act):
                if done_at[i] <= step:
                    end[rid] = t
                    context -= prompts[rid] + step - (done_at[i] - max(1, outputs[rid]))
                    if closed and released < n:
                        arr[released] = t
                        released += 1
                else:
                    keep.append(i)
            act = [act[i] for i in keep]
            done_at = [done_at[i] for i in keep]
            next_done = min(done_at) if done_at else 0
    backlog = 0
    if not closed and n:
        last = arr[n - 1]
        backlog = sum(1 for a in admitted if a >= last) - (1 if idle_at_last else 0)
    return np.asarray(end) - np.asarray(arr), backlog
