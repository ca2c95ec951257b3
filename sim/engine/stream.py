"""Single-stream servers: one request at a time, one SimPy timeout per request.

With one stream the clock never changes a decision -- what a request does depends on its own
draws and, for a learning policy, on the requests before it, never on when it runs. So each
request's cycles are computed in a tight loop when it starts, and the process yields ONE timeout
that lands exactly where a timeout per cycle would have (the durations are added in cycle order,
as SimPy would add them; :func:`delay_to`). Queueing, arrivals and closed-loop users still run in
SimPy around it.

* :func:`stream_server` -- a static policy (fixed tau / target-only): the whole run's cycles are
  decided up front with numpy (:class:`StaticPlan`); the process only sums each request's
  durations. The hot path of a million-cycle run.
* :func:`dynamic_stream_server` -- any other policy (heuristic, adaptive, confidence, budgets):
  the policy is asked before each cycle and told after it, in a per-request loop over local ints
  and floats that appends to preallocated column lists (no per-cycle objects: the PolicyState and
  the CycleRecord handed to the policy are one object each, updated in place).

Times: a request's ``start_s`` is its admission, ``first_token_s`` the end of its first cycle;
``verify_passes`` counts its cycles. A request whose policy says its verify budget is spent ends
there, with fewer tokens than asked (counted in ``truncated``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np
import simpy

from sim.engine.drafting import Drafting
from sim.engine.figures import Log
from sim.engine.workload import Workload
from sim.models.acceptance import BLOCK, Depths
from sim.models.latency import CostModel
from sim.policies.base import Policy, PolicyState
from sim.policies.library import Adaptive, Heuristic
from tracing.schema import CycleRecord

KERNEL_POLICIES = (Heuristic, Adaptive)  # compiled request loops (sim.engine.kernels)
TAU_TABLE = 65  # verify costs by tau precomputed for tau < this (deeper: asked of the model)


def delay_to(now: float, t: float) -> float:
    """The delay ``d`` with ``now + d == t`` in floating point, so that one timeout lands exactly
    on the time a chain of shorter timeouts would have reached."""
    d = t - now
    for _ in range(8):
        got = now + d
        if got == t:
            break
        d = math.nextafter(d, math.inf if got < t else -math.inf)
    return d


@dataclass
class StaticPlan:
    """Every cycle of a single-stream run with a static policy, decided before the timeline.

    With one stream and a draft length that depends only on the tokens left, no outcome depends
    on time, so the whole run's cycles are computed with numpy up front (the timeline advances
    one SimPy timeout per request). ``bounds[i]:bounds[i+1]`` are request i's cycle rows.
    """

    tau: np.ndarray
    accepted: np.ndarray
    context: np.ndarray
    draft_s: np.ndarray
    verify_s: np.ndarray
    duration_s: np.ndarray
    bounds: np.ndarray

    @classmethod
    def build(cls, workload: Workload, costs: CostModel, tau: int, depths: Depths) -> StaticPlan:
        n = workload.output_tokens.astype(np.int64)
        r = n.size
        model = depths.model
        per_request = model.request_survival is not None and workload.trace_row is not None
        if per_request:
            assert model.request_survival is not None and workload.trace_row is not None
            rows = workload.trace_row
            seg_len = _segment_lengths(n, tau, model.request_survival[rows])
        else:
            seg_len = _segment_lengths(n, tau, model.survival(0)[None, :])
        seg_start = np.concatenate(([0], np.cumsum(seg_len)))
        # Request i reads depths d[seg_start[i]:seg_start[i+1]] -- enough for all its cycles but
        # for a tiny chance, and then it draws fresh ones in step 2.
        if per_request:
            d = model.draw_segments(depths.rng, seg_len, rows)
        else:
            d = depths.take(int(seg_start[-1]))

        def fresh(req: np.ndarray) -> np.ndarray:
            if per_request:
                return model.draw_rows(depths.rng, rows[req])
            return depths.take(req.size)

        # 1. cycles with tau unclipped: exact while >= tau + 1 tokens remain (a prefix of each
        #    request's segment, since the tokens done grow along it)
        e = np.minimum(d, tau) + 1
        cs = np.cumsum(e)
        base = np.concatenate(([0], cs))[seg_start[:-1]]  # tokens before each segment
        done_before = cs - e - np.repeat(base, seg_len)
        valid = done_before <= np.repeat(n - tau - 1, seg_len)
        m = np.add.reduceat(valid.astype(np.int64), seg_start[:-1])
        out = np.add.reduceat(np.where(valid, e, 0), seg_start[:-1])
        # 2. the rest, all requests at once: tau clipped to the tokens left (<= tau + 1 rounds
        #    unless a segment ran out)
        ptr = seg_start[:-1] + m
        seg_end = seg_start[1:]
        tails: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        count = np.zeros(r, dtype=np.int64)
        idx = np.flatnonzero(out < n)
        while idx.size:
            t = np.minimum(tau, n[idx] - out[idx] - 1)
            p = ptr[idx]
            inside = p < seg_end[idx]
            depth = d[np.minimum(p, d.size - 1)]
            if not inside.all():
                depth = np.where(inside, depth, fresh(idx))
            a = np.minimum(t, depth)
            tails.append((idx, count[idx].copy(), t, a))
            out[idx] += a + 1
            ptr[idx] += 1
            count[idx] += 1
            idx = idx[out[idx] < n[idx]]
        # 3. scatter prefix and tail cycles into per-request contiguous rows
        cycles = m + count
        bounds = np.concatenate(([0], np.cumsum(cycles)))
        total = int(bounds[-1])
        tau_a = np.empty(total, dtype=np.int64)
        acc_a = np.empty(total, dtype=np.int64)
        req_of_row = np.repeat(np.arange(r), cycles)
        prefix = (np.arange(total) - np.repeat(bounds[:-1], cycles)) < np.repeat(m, cycles)
        tau_a[prefix] = tau  # prefix rows, in order, are exactly the valid depths, in order
        acc_a[prefix] = e[valid] - 1
        for req, k, t, a in tails:
            rows = bounds[req] + m[req] + k
            tau_a[rows] = t
            acc_a[rows] = a
        # 4. contexts and costs
        emitted = acc_a + 1
        ce = np.cumsum(emitted)
        first_row = bounds[:-1]
        before = ce - emitted - np.repeat(np.concatenate(([0], ce))[first_row], cycles)
        context = workload.prompt_tokens.astype(np.int64)[req_of_row] + before
        verify_by_tau = np.array([costs.verify_s(t + 1) for t in range(tau + 1)])
        draft_s = tau_a * costs.draft_step_s
        verify_s = verify_by_tau[tau_a]
        if costs.context_s_per_token:
            verify_s = verify_s + costs.context_s_per_token * context
        if workload.speed is not None:
            speed = workload.speed[req_of_row]
            draft_s, verify_s = draft_s * speed, verify_s * speed
        duration = draft_s + verify_s + costs.overhead_s
        return cls(tau_a, acc_a, context, draft_s, verify_s, duration, bounds)


def _segment_lengths(n: np.ndarray, tau: int, survival: np.ndarray) -> np.ndarray:
    """Depths to set aside per request: the expected cycles + 6 standard deviations + tau + 2
    (renewal theory: cycles ~ n / E with variance n * Var / E^3), at most n. ``survival`` has
    one row, or one row per request."""
    ones = np.ones((survival.shape[0], 1))
    p_ge = np.concatenate((ones, survival[:, :tau]), axis=1)  # P(emitted >= k + 1), k = 0..tau
    mean = p_ge.sum(axis=1)
    pmf = p_ge - np.concatenate((p_ge[:, 1:], 0 * ones), axis=1)
    var = np.maximum((pmf * (np.arange(tau + 1) + 1.0) ** 2).sum(axis=1) - mean * mean, 0.0)
    cycles = n / mean + 6.0 * np.sqrt(n * var / mean**3) + tau + 2
    return np.minimum(n, np.ceil(cycles).astype(np.int64))


def prefill_seconds(workload: Workload, costs: CostModel) -> np.ndarray:
    """Each request's prefill, at its speed."""
    prefill = costs.prefill_many(workload.prompt_tokens)
    return prefill if workload.speed is None else prefill * workload.speed


def stream_server(
    env: simpy.Environment,
    queue: simpy.Store,
    workload: Workload,
    costs: CostModel,
    plan: StaticPlan,
    log: Log,
    on_done: Callable[[], None],
) -> Generator[simpy.Event, Any, None]:
    """Single stream, static policy: serve requests in queue order along ``plan``, one timeout
    per request."""
    durations = plan.duration_s.tolist()
    bounds = plan.bounds.tolist()
    prefills = prefill_seconds(workload, costs).tolist()
    timeout, get, add = env.timeout, queue.get, operator.add
    t0 = np.zeros(len(workload))
    log.stream_t0 = t0
    while True:
        rid = yield get()
        start = env.now
        prefill = prefills[rid]
        first = start + prefill if prefill > 0 else start
        t0[rid] = first
        a, b = bounds[rid], bounds[rid + 1]
        if prefill > 0 or b > a:
            # the cycles' durations added in order, as a timeout per cycle would
            yield timeout(delay_to(start, reduce(add, durations[a:b], first)))
        log.start_s[rid], log.end_s[rid] = start, env.now
        log.busy_s += env.now - start
        on_done()


def finish_stream_log(log: Log, workload: Workload, costs: CostModel, plan: StaticPlan) -> None:
    """After the run: per-request and per-cycle columns of a stream run, from the plan."""
    r = len(workload)
    cycles = np.diff(plan.bounds)
    req = np.repeat(np.arange(r), cycles)
    t0 = log.stream_t0 if log.stream_t0 is not None else np.zeros(r)
    cd = np.cumsum(plan.duration_s)
    offset = cd - plan.duration_s - np.concatenate(([0.0], cd))[plan.bounds[:-1]][req]
    start = t0[req] + offset
    log.prefill_s[:] = prefill_seconds(workload, costs)
    log.first_token_s[:] = t0 + plan.duration_s[plan.bounds[:-1]]
    log.output_tokens[:] = workload.output_tokens
    log.verify_passes[:] = cycles
    first_cycle = np.arange(plan.bounds[-1]) - plan.bounds[:-1][req]
    for key, value in (
        ("request_id", req),
        ("cycle", first_cycle),
        ("start_s", start),
        ("tau", plan.tau),
        ("accepted", plan.accepted),
        ("emitted", plan.accepted + 1),
        ("draft_s", plan.draft_s),
        ("verify_s", plan.verify_s),
        ("overhead_s", np.full(req.size, costs.overhead_s)),
        ("context_tokens", plan.context),
    ):
        log.cycles[key] = [value]


def dynamic_stream_server(
    env: simpy.Environment,
    queue: simpy.Store,
    workload: Workload,
    costs: CostModel,
    policy: Policy,
    drafting: Drafting,
    log: Log,
    on_done: Callable[[], None],
) -> Generator[simpy.Event, Any, None]:
    """Single stream, any policy: the policy asked before each cycle; a request's cycles run in
    a tight loop and the clock advances by one timeout per request. The request and cycle
    columns are filled after the run (:meth:`Log.fill_stream_ids`)."""
    prompts, outputs = workload.prompt_tokens.tolist(), workload.output_tokens.tolist()
    speeds = [1.0] * len(workload) if workload.speed is None else workload.speed.tolist()
    cols = log.cycles
    put_start, put_tau, put_acc, put_emit, put_draft, put_verify, put_ctx = (
        cols[key].append
        for key in ("start_s", "tau", "accepted", "emitted", "draft_s", "verify_s",
                    "context_tokens")
    )
    put_prob = log.draft_probs.append if drafting.confident else None
    served = log.served
    timeout, get, draw = env.timeout, queue.get, drafting.draw
    next_tau = policy.next_tau
    # the base class's hooks do nothing: not called
    base = type(policy)
    exhausted = None if base.budget_exhausted is Policy.budget_exhausted else policy.budget_exhausted
    observe = None if base.observe is Policy.observe else policy.observe
    d_s, ovh, k = costs.draft_step_s, costs.overhead_s, costs.context_s_per_token
    vt = [costs.verify_s(t + 1) for t in range(TAU_TABLE)]  # + k * context = verify_s(t+1, 1, ctx)
    depths = drafting.depths
    plain = drafting.plain  # depth straight from the run's stream: inlined below
    block: list[int] = []
    pos = BLOCK
    # one state and one record for the whole run, updated in place (policies read, never keep)
    state = PolicyState(0, 0, 0, 0, 0, 0)
    record = CycleRecord(0, 0, 0.0, 0, 0, 0, 0.0, 0.0, ovh, 0)
    kernel = None
    if plain and type(policy) in KERNEL_POLICIES:
        from sim.engine.kernels import stream_kernel  # numba: imported when first needed

        kernel = stream_kernel(policy, plain, vt, d_s, ovh, k, depths, cols)
    while True:
        rid = yield get()
        start = env.now
        policy.reset(rid)
        n, context = outputs[rid], prompts[rid]
        speed = speeds[rid]
        scaled = speed != 1.0  # (x * 1.0 == x: skipping it changes nothing)
        prefill = costs.prefill_s(context) * speed
        log.start_s[rid], log.prefill_s[rid] = start, prefill
        t = start + prefill if prefill > 0 else start
        log.first_token_s[rid] = t
        if kernel is not None:  # the same loop, compiled (sim.engine.kernels)
            out, cycle, t = kernel.request(n, context, t, speed)
            if cycle:
                log.first_token_s[rid] = kernel.first_token_s(cycle)
        else:
            state.request_id = record.request_id = rid
            state.max_new_tokens = n
            out = cycle = 0
            while out < n:
                state.cycle = state.verify_passes = cycle
                state.context_tokens = context
                state.output_tokens = out
                if exhausted is not None and exhausted(state):
                    log.truncated += 1
                    break
                if plain:
                    if pos >= BLOCK:
                        depths.refill()
                        block, pos = depths.arrays[0].tolist(), 0
                    tau, depth, q = next_tau(state), block[pos], None
                    pos += 1
                    acc = tau if depth > tau else depth
                else:
                    tau, acc, q = draw(rid, cycle, context, next_tau(state))
                draft_s = tau * d_s
                verify_s = (vt[tau] if tau < TAU_TABLE else costs.verify_s(tau + 1)) + k * context
                if scaled:
                    draft_s, verify_s = draft_s * speed, verify_s * speed
                began = t
                t = t + (draft_s + verify_s + ovh)  # as SimPy adds a timeout to the clock
                emitted = acc + 1 if acc + 1 < n - out else n - out
                put_start(began)
                put_tau(tau)
                put_acc(acc)
                put_emit(emitted)
                put_draft(draft_s)
                put_verify(verify_s)
                put_ctx(context)
                if put_prob is not None:
                    put_prob(q)
                if observe is not None:
                    record.cycle = cycle
                    record.start_s = began
                    record.tau = tau
                    record.accepted = acc
                    record.emitted = emitted
                    record.draft_s = draft_s
                    record.verify_s = verify_s
                    record.context_tokens = context
                    record.draft_prob = q
                    observe(record)
                if not cycle:
                    log.first_token_s[rid] = t
                cycle += 1
                out += emitted
                context += emitted
        served.append((rid, cycle))
        if prefill > 0 or cycle:
            yield timeout(delay_to(start, t))
        log.end_s[rid], log.output_tokens[rid], log.verify_passes[rid] = env.now, out, cycle
        log.busy_s += env.now - start
        on_done()
