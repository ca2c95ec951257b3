"""Continuous batching as a SimPy process: arrivals feed a queue, the server runs steps.

:func:`batch_server` admits up to ``max_batch`` requests and advances the clock by one timeout
per *step*; in a step every active request runs one cycle: the policy picks tau (1), the draft
phase runs max(tau) draft passes over the requests still drafting (2), one verify pass scores
all ``sum(tau + 1)`` tokens -- flat until the batch reaches the ridge, compute-bound beyond it
(3), accepted prefixes are drawn and each request's policy told (4). Requests admitted in a step
pay their prefill in that step. Every request decodes under its own ``policy.fork()`` (its own
per-request state, run-level estimates shared); the step's draft lengths come row by row from
each fork's ``next_tau``, or jointly from ``policy.plan_batch`` for a policy that plans the whole
step (goodput), each state carrying the batch size and the step cost (``CostModel.step_s``).
The verify pass comes from a server's batched profile when the scenario has one (a padded
batch, ``CostModel.batch_step``), else it is flat until the ridge and compute-bound beyond it.

The active set is kept as parallel columns (request, tokens left, context, cycle) and each step
works over them whole: a static policy's taus are one expression over the columns (no fork:
it has no state), the run's depth stream is sliced for the step, per-step values are logged
once per step and the step's cycles are appended to the log's columns in one go; a learning or
budgeted policy is asked row by row (one PolicyState per active request, updated in place, and
one CycleRecord for the run handed to ``observe``).

Times: a request's ``start_s`` is its admission, ``first_token_s`` the end of its first cycle;
``verify_passes`` counts its cycles. A request whose policy says its verify budget is spent ends
there, with fewer tokens than asked (counted in ``truncated``). The single-stream servers are in
:mod:`sim.engine.stream`; the target-only baseline of a batched run in :mod:`sim.engine.baseline`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.engine.drafting import Drafting
from sim.engine.figures import Log
from sim.engine.workload import Workload
from sim.models.acceptance import BLOCK
from sim.models.latency import CostModel
from sim.policies.base import Policy, PolicyState
from tracing.schema import CycleRecord


def batch_server(
    env: simpy.Environment,
    queue: simpy.Store,
    workload: Workload,
    costs: CostModel,
    policy: Policy,
    drafting: Drafting,
    max_batch: int,
    log: Log,
    on_done: Callable[[], None],
) -> Generator[simpy.Event, Any, None]:
    """Continuous batching (any policy); one timeout per step, every request under its own
    ``policy.fork()``. Per-step values (start, draft and verify seconds) are logged once per
    step and spread over its cycles after the run (:meth:`Log.fill_batch_steps`)."""
    prompts, outputs = workload.prompt_tokens.tolist(), workload.output_tokens.tolist()
    draw, depths = drafting.draw, drafting.depths
    cols = log.cycles
    put_rid, put_cycle, put_tau, put_acc, put_emit, put_ctx = (
        cols[key].extend
        for key in ("request_id", "cycle", "tau", "accepted", "emitted", "context_tokens")
    )
    put_prob = log.draft_probs.extend if not drafting.plain else None
    steps = log.steps
    put_b, put_start, put_draft, put_verify = (
        steps[key].append for key in ("cycles", "start_s", "draft_s", "verify_s"))
    static = policy.is_static
    fixed_tau = policy.tau
    joint = type(policy).plan_batch is not Policy.plan_batch
    d_s, ovh, k, ridge = (costs.draft_step_s, costs.overhead_s, costs.context_s_per_token,
                          costs.ridge_tokens)
    padded = bool(costs.batch_table)  # a server's batched profile prices the step
    step_cost = costs.step_s
    record = CycleRecord(0, 0, 0.0, 0, 0, 0, 0.0, 0.0, ovh, 0)
    block: list[int] = []
    pos = BLOCK
    # the active set, as parallel columns (left: tokens the request may still emit)
    rids: list[int] = []
    max_new: list[int] = []
    left: list[int] = []
    ctxs: list[int] = []
    cycles: list[int] = []
    members: list[Policy] = []  # each request's own fork of the policy (not for a static one)
    states: list[PolicyState] = []  # and its state, updated in place before each step

    def finish(i: int, now: float) -> None:
        rid = rids[i]
        if cycles[i] == 0:
            log.first_token_s[rid] = now
        log.end_s[rid], log.output_tokens[rid] = now, max_new[i] - left[i]
        log.verify_passes[rid] = cycles[i]
        on_done()

    def keep(alive: list[int]) -> None:
        for column in (rids, max_new, left, ctxs, cycles):
            column[:] = [column[i] for i in alive]
        if not static:
            members[:] = [members[i] for i in alive]
            states[:] = [states[i] for i in alive]

    while True:
        waiting: list[int] = []
        if not rids:
            waiting.append((yield queue.get()))
        now = env.now
        prefill = 0.0
        # Admit from the head of the queue (only this process takes from it).
        while len(rids) < max_batch and (waiting or queue.items):
            rid = waiting.pop() if waiting else queue.items.pop(0)
            p = costs.prefill_s(prompts[rid])
            prefill += p
            log.start_s[rid], log.prefill_s[rid] = now, p
            if not static:
                member = policy.fork()
                member.reset(rid)
                members.append(member)
                states.append(PolicyState(rid, 0, 0, 0, 0, 0, 1, step_cost))
            rids.append(rid)
            max_new.append(outputs[rid])
            left.append(outputs[rid])
            ctxs.append(prompts[rid])
            cycles.append(0)
        # 1. requests out of budget end here; the rest get the step's draft lengths -- row by
        #    row (a budget pass is taken as each row commits, so a shared pool is never
        #    overdrawn), or jointly for a policy that plans the whole step (goodput)
        if static:  # useful_tau(state, tau) over the column (left >= 1 while active)
            taus = [fixed_tau if fixed_tau < x else x - 1 for x in left]
        else:
            taus, alive = [], []
            size = len(rids)
            for i, state in enumerate(states):
                state.cycle = state.verify_passes = cycles[i]
                state.context_tokens = ctxs[i]
                state.output_tokens, state.max_new_tokens = max_new[i] - left[i], max_new[i]
                state.batch_size = size
                if members[i].budget_exhausted(state):
                    log.truncated += 1
                    finish(i, now)
                    continue
                alive.append(i)
                if not joint:
                    taus.append(members[i].next_tau(state))
            if len(alive) < len(rids):
                keep(alive)
            if joint and rids:
                for state in states:
                    state.batch_size = len(rids)
                taus = policy.plan_batch(members, states)
        b = len(rids)
        if not b:
            continue
        # 2. drafting (the confidence policy may stop a draft early) and acceptance
        if put_prob is None:  # plain: depths straight from the run's stream, in active order
            if pos + b > BLOCK:
                rest = block[pos:]
                depths.refill()
                block = depths.arrays[0].tolist()
                pos = b - len(rest)
                depth = rest + block[:pos]
            else:
                depth = block[pos : pos + b]
                pos += b
            accs = [t if d > t else d for t, d in zip(taus, depth, strict=True)]
        else:
            outcome = [draw(rids[i], cycles[i], ctxs[i], taus[i]) for i in range(b)]
            taus = [o[0] for o in outcome]
            accs = [o[1] for o in outcome]
            put_prob([o[2] for o in outcome])
        # 3. the step's cost: max(tau) draft passes, one verify pass over the whole batch
        if padded:
            draft_s, verify_s = costs.batch_step(taus, sum(ctxs) if k else 0)
        elif b <= ridge:  # costs.batch_step without a profile, inlined: flat draft passes
            draft_s = max(taus) * d_s
            verify_s = costs.verify_s(sum(taus) + b, b, sum(ctxs) if k else 0)
        else:  # pass j runs over the sequences drafting more than j tokens
            draft_s = sum(costs.draft_step(sum(t > j for t in taus)) for j in range(max(taus)))
            verify_s = costs.verify_s(sum(taus) + b, b, sum(ctxs) if k else 0)
        yield env.timeout(prefill + draft_s + verify_s + ovh)
        end = env.now
        log.busy_s += end - now
        start = now + prefill
        # 4. outcomes, records, the policy told
        emitted = [a + 1 if a < x else x for a, x in zip(accs, left, strict=True)]
        put_b(b)
        put_start(start)
        put_draft(draft_s)
        put_verify(verify_s)
        put_rid(rids)
        put_cycle(cycles)
        put_tau(taus)
        put_acc(accs)
        put_emit(emitted)
        put_ctx(ctxs)
        if not static:
            record.start_s, record.draft_s, record.verify_s = start, draft_s, verify_s
            for i in range(b):
                record.request_id, record.cycle, record.tau = rids[i], cycles[i], taus[i]
                record.accepted, record.emitted = accs[i], emitted[i]
                record.context_tokens = ctxs[i]
                record.draft_prob = None if put_prob is None else log.draft_probs[i - b]
                members[i].observe(record)
        if 0 in cycles:
            for i in range(b):
                if cycles[i] == 0:
                    log.first_token_s[rids[i]] = end
        cycles[:] = [c + 1 for c in cycles]
        left[:] = [x - e for x, e in zip(left, emitted, strict=True)]
        ctxs[:] = [c + e for c, e in zip(ctxs, emitted, strict=True)]
        if 0 in left:
            for i in range(b):
                if not left[i]:
                    finish(i, end)
            keep([i for i in range(b) if left[i]])
