"""The served system as SimPy processes: arrivals feed a queue, a server runs cycles.

Three servers share one queue (a ``simpy.Store``) and one record log:

* :func:`stream_server` -- single stream with a static policy (fixed tau / target-only): each
  request's accepted depths are drawn as one numpy block, and the process yields one timeout per
  cycle with precomputed durations. The hot path of a million-cycle run.
* :func:`dynamic_stream_server` -- single stream with any other policy (heuristic, adaptive,
  confidence, budgets): the policy is asked before each cycle; one timeout per cycle.
* :func:`batch_server` -- continuous batching up to ``max_batch``: one timeout per *step*; in a
  step every active request runs one cycle: the policy plans the step's draft lengths (1) --
  each request under its own fork of the policy, the batch size and step cost known -- the
  draft phase runs max(tau) draft passes over the requests still drafting (2), one verify pass
  scores the batch -- from a server's batched profile when the scenario has one (a padded
  batch), else flat until the ridge and compute-bound beyond it (3), accepted prefixes are
  drawn and each request's policy told (4). Requests admitted in a step pay their prefill in
  that step.

Times: a request's ``start_s`` is its admission, ``first_token_s`` the end of its first cycle;
``verify_passes`` counts its cycles. A request whose policy says its verify budget is spent ends
there, with fewer tokens than asked (counted in ``truncated``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from sim.acceptance import AcceptanceModel, Depths
from sim.figures import Log
from sim.latency import CostModel
from sim.policies import Confidence, Policy, PolicyState
from sim.workload import Workload
from tracing.schema import CycleRecord


@dataclass
class StaticPlan:
    """Every cycle of a single-stream run with a static policy, decided before the timeline.

    With one stream and a draft length that depends only on the tokens left, no outcome depends
    on time, so the whole run's cycles are computed with numpy up front (the timeline itself still
    advances one SimPy timeout per cycle). ``bounds[i]:bounds[i+1]`` are request i's cycle rows.
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
    prefill = costs.prefill_s_per_token * workload.prompt_tokens
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
    """Single stream, static policy: serve requests in queue order along ``plan``."""
    durations = plan.duration_s.tolist()
    bounds = plan.bounds.tolist()
    prefills = prefill_seconds(workload, costs).tolist()
    timeout, get = env.timeout, queue.get
    t0 = np.zeros(len(workload))
    while True:
        rid = yield get()
        start = env.now
        if prefills[rid] > 0:
            yield timeout(prefills[rid])
        t0[rid] = env.now
        for step in durations[bounds[rid] : bounds[rid + 1]]:  # one timeout per cycle
            yield timeout(step)
        log.start_s[rid], log.end_s[rid] = start, env.now
        log.busy_s += env.now - start
        log.stream_t0 = t0
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


@dataclass
class _Active:
    """A request being decoded by the batch server."""

    rid: int
    max_new: int
    context: int
    out: int = 0
    cycle: int = 0
    new: bool = True


class Drafting:
    """One cycle's drafting outcome for the dynamic servers: (drafted, accepted, draft probs).

    The accepted depth comes from the replayed record of the request, its own hazards
    (per-request mode), its context bucket, or the run's depth stream; the ``confidence`` policy
    drafts token by token and may stop early.
    """

    def __init__(
        self,
        policy: Policy,
        model: AcceptanceModel,
        depths: Depths,
        rng: np.random.Generator,
        workload: Workload,
    ) -> None:
        self.policy, self.model, self.depths, self.rng = policy, model, depths, rng
        self.confident = isinstance(getattr(policy, "inner", policy), Confidence)
        self.bucketed = len(model.edges) > 0
        self.rows = workload.trace_row if model.request_survival is not None else None
        self.prompts = workload.prompt_tokens
        self.by_position = model.positions is not None and self.rows is not None

    def draw(
        self, rid: int, cycle: int, context: int, tau: int
    ) -> tuple[int, int, list[float] | None]:
        model = self.model
        if self.by_position and not self.confident:
            assert self.rows is not None
            pos = context - int(self.prompts[rid])
            drafted, accepted = model.draw_at(self.rng, int(self.rows[rid]), pos, tau)
            return drafted, accepted, None
        bucket = model.bucket(context) if self.bucketed else 0
        if model.short_proposals:
            tau = model.proposed(self.rng, tau)
        if self.confident and tau > 0:
            return model.sample_with_confidence(self.rng, tau, bucket, self.policy.keep_drafting)
        if self.rows is not None:
            depth = int(model.draw_rows(self.rng, self.rows[rid : rid + 1])[0])
        else:
            depth = self.depths.next(bucket)
        return tau, min(tau, depth), None


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
    """Single stream, any policy: one timeout per cycle, the policy asked before each."""
    prompts, outputs = workload.prompt_tokens.tolist(), workload.output_tokens.tolist()
    rows: list[CycleRecord] = []
    log.batch_rows = rows
    timeout, get, draw = env.timeout, queue.get, drafting.draw
    next_tau, observe, exhausted = policy.next_tau, policy.observe, policy.budget_exhausted
    d_s, ovh = costs.draft_step_s, costs.overhead_s
    speeds = [1.0] * len(workload) if workload.speed is None else workload.speed.tolist()
    while True:
        rid = yield get()
        start = env.now
        policy.reset(rid)
        n, context = outputs[rid], prompts[rid]
        speed = speeds[rid]
        prefill = costs.prefill_s(context) * speed
        log.start_s[rid], log.prefill_s[rid] = start, prefill
        if prefill > 0:
            yield timeout(prefill)
        out = cycle = 0
        log.first_token_s[rid] = env.now
        while out < n:
            state = PolicyState(rid, cycle, context, out, n, cycle)
            if exhausted(state):
                log.truncated += 1
                break
            tau, acc, q = draw(rid, cycle, context, next_tau(state))
            draft_s = tau * d_s * speed
            verify_s = costs.verify_s(tau + 1, 1, context) * speed
            t = env.now
            yield timeout(draft_s + verify_s + ovh)
            emitted = min(acc + 1, n - out)
            record = CycleRecord(
                rid, cycle, t, tau, acc, emitted, draft_s, verify_s, ovh, context, draft_prob=q
            )
            rows.append(record)
            observe(record)
            if cycle == 0:
                log.first_token_s[rid] = env.now
            cycle += 1
            out += emitted
            context += emitted
        log.end_s[rid], log.output_tokens[rid], log.verify_passes[rid] = env.now, out, cycle
        log.busy_s += env.now - start
        on_done()


def batch_server(
    env: simpy.Environment,
    queue: simpy.Store,
    workload: Workload,
    costs: CostModel,
    policy: Policy,
    model: AcceptanceModel,
    depths: Depths,
    rng: np.random.Generator,
    max_batch: int,
    log: Log,
    on_done: Callable[[], None],
) -> Generator[simpy.Event, Any, None]:
    """Continuous batching (any policy); one timeout per step. Every request decodes under its
    own ``policy.fork()``; the step's draft lengths come from ``policy.plan_batch`` with the
    batch size and the step cost (``CostModel.step_s``) in each state."""
    prompts, outputs = workload.prompt_tokens.tolist(), workload.output_tokens.tolist()
    draw = Drafting(policy, model, depths, rng, workload).draw
    active: list[_Active] = []
    members: dict[int, Policy] = {}  # each active request's own fork of the policy
    rows: list[CycleRecord] = []  # turned into columns when the run ends (Log.batch_columns)
    log.batch_rows = rows
    step_cost = costs.step_s
    joint = type(policy).plan_batch is not Policy.plan_batch

    def finish(r: _Active, now: float) -> None:
        if r.cycle == 0:
            log.first_token_s[r.rid] = now
        log.end_s[r.rid], log.output_tokens[r.rid] = now, r.out
        log.verify_passes[r.rid] = r.cycle
        members.pop(r.rid, None)
        on_done()

    while True:
        waiting: list[int] = []
        if not active:
            waiting.append((yield queue.get()))
        now = env.now
        prefill = 0.0
        # Admit from the head of the queue (only this process takes from it).
        while len(active) < max_batch and (waiting or queue.items):
            rid = waiting.pop() if waiting else queue.items.pop(0)
            p = costs.prefill_s(prompts[rid])
            prefill += p
            log.start_s[rid], log.prefill_s[rid] = now, p
            member = policy.fork()
            member.reset(rid)
            members[rid] = member
            active.append(_Active(rid, outputs[rid], prompts[rid]))
        # 1. requests out of budget end here; the rest get the step's draft lengths -- row by
        #    row (a budget pass is taken as each row commits, so a shared pool is never
        #    overdrawn), or jointly for a policy that plans the whole step (goodput)
        kept: list[_Active] = []
        plan: list[tuple[_Active, int]] = []
        for r in active:
            state = PolicyState(r.rid, r.cycle, r.context, r.out, r.max_new, r.cycle,
                                len(active), step_cost)
            if members[r.rid].budget_exhausted(state):
                log.truncated += 1
                finish(r, now)
                continue
            kept.append(r)
            if not joint:
                plan.append((r, members[r.rid].next_tau(state)))
        active = kept
        if not active:
            continue
        if joint:
            states = [PolicyState(r.rid, r.cycle, r.context, r.out, r.max_new, r.cycle,
                                  len(active), step_cost) for r in active]
            asked = policy.plan_batch([members[r.rid] for r in active], states)
            plan = list(zip(active, asked, strict=True))
        # 2. drafting (the confidence policy may stop a draft early) and acceptance
        outcome = [draw(r.rid, r.cycle, r.context, tau) for r, tau in plan]
        # 3. the step's cost: max(tau) draft passes, one verify pass over the whole batch
        taus = [o[0] for o in outcome]
        context = sum(r.context for r, _ in plan) if costs.context_s_per_token else 0
        draft_s, verify_s = costs.batch_step(taus, context)
        ovh = costs.overhead_s
        yield env.timeout(prefill + draft_s + verify_s + ovh)
        log.busy_s += env.now - now
        start = now + prefill
        # 4. outcomes, records, each request's policy told
        for (r, _), (tau, acc, q) in zip(plan, outcome, strict=True):
            emitted = min(acc + 1, r.max_new - r.out)
            record = CycleRecord(
                r.rid,
                r.cycle,
                start,
                tau,
                acc,
                emitted,
                draft_s,
                verify_s,
                ovh,
                r.context,
                draft_prob=q,
            )
            rows.append(record)
            members[r.rid].observe(record)
            if r.cycle == 0:
                log.first_token_s[r.rid] = env.now
            r.cycle += 1
            r.out += emitted
            r.context += emitted
        for r in [r for r in active if r.out >= r.max_new]:
            finish(r, env.now)
        active = [r for r in active if r.out < r.max_new]
