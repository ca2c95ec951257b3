"""Continuous batching as a SimPy process: arrivals feed a queue, the server runs steps.

:func:`batch_server` admits up to ``max_batch`` requests and advances the clock by one timeout
per *step*; in a step every active request runs one cycle: the policy picks tau (1), the draft
phase runs max(tau) draft passes over the requests still drafting (2), one verify pass scores
all ``sum(tau + 1)`` tokens -- flat until the batch reaches the ridge, compute-bound beyond it
(3), accepted prefixes are drawn and the policy told (4). Requests admitted in a step pay their
prefill in that step. The active set is kept as parallel columns (request, tokens out, context,
cycle) and each step works over them whole: a static policy's taus are one expression over the
columns, the run's depth stream is sliced for the step, and the step's cycles are appended to
the log's columns in one go; only a learning or budgeted policy is asked request by request
(``next_tau`` / ``observe``, on one PolicyState and one CycleRecord updated in place).

Times: a request's ``start_s`` is its admission, ``first_token_s`` the end of its first cycle;
``verify_passes`` counts its cycles. A request whose policy says its verify budget is spent ends
there, with fewer tokens than asked (counted in ``truncated``). The single-stream servers are in
:mod:`sim.stream`; the target-only baseline of a batched run in :mod:`sim.baseline`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.acceptance import BLOCK
from sim.drafting import Drafting
from sim.figures import Log
from sim.latency import CostModel
from sim.policies import Policy, PolicyState
from sim.workload import Workload
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
    """Continuous batching (any policy); one timeout per step. Per-step values (start, draft
    and verify seconds) are logged once per step and spread over its cycles after the run
    (:meth:`Log.fill_batch_steps`)."""
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
    base = type(policy)
    observe = None if base.observe is Policy.observe else policy.observe
    next_tau, exhausted = policy.next_tau, policy.budget_exhausted
    d_s, ovh, k, ridge = (costs.draft_step_s, costs.overhead_s, costs.context_s_per_token,
                          costs.ridge_tokens)
    state = PolicyState(0, 0, 0, 0, 0, 0)
    record = CycleRecord(0, 0, 0.0, 0, 0, 0, 0.0, 0.0, ovh, 0)
    block: list[int] = []
    pos = BLOCK
    # the active set, as parallel columns (left: tokens the request may still emit)
    rids: list[int] = []
    max_new: list[int] = []
    left: list[int] = []
    ctxs: list[int] = []
    cycles: list[int] = []

    def finish(i: int, now: float) -> None:
        rid = rids[i]
        if cycles[i] == 0:
            log.first_token_s[rid] = now
        log.end_s[rid], log.output_tokens[rid] = now, max_new[i] - left[i]
        log.verify_passes[rid] = cycles[i]
        on_done()

    def keep(alive: list[int]) -> None:
        rids[:] = [rids[i] for i in alive]
        max_new[:] = [max_new[i] for i in alive]
        left[:] = [left[i] for i in alive]
        ctxs[:] = [ctxs[i] for i in alive]
        cycles[:] = [cycles[i] for i in alive]

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
            policy.reset(rid)
            rids.append(rid)
            max_new.append(outputs[rid])
            left.append(outputs[rid])
            ctxs.append(prompts[rid])
            cycles.append(0)
        # 1. the policy's draft lengths (requests out of budget end here)
        if static:  # useful_tau(state, tau) over the column (left >= 1 while active)
            taus = [fixed_tau if fixed_tau < x else x - 1 for x in left]
        else:
            taus, alive = [], []
            for i, rid in enumerate(rids):
                state.request_id, state.cycle, state.verify_passes = rid, cycles[i], cycles[i]
                state.context_tokens = ctxs[i]
                state.output_tokens, state.max_new_tokens = max_new[i] - left[i], max_new[i]
                if exhausted(state):
                    log.truncated += 1
                    finish(i, now)
                    continue
                alive.append(i)
                taus.append(next_tau(state))
            if len(alive) < len(rids):
                keep(alive)
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
        longest = max(taus)
        if b <= ridge:  # every draft pass memory-bound: flat
            draft_s = longest * d_s
        else:  # pass j runs over the sequences drafting more than j tokens
            draft_s = sum(costs.draft_step(sum(t > j for t in taus)) for j in range(longest))
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
        if observe is not None:
            record.start_s, record.draft_s, record.verify_s = start, draft_s, verify_s
            for i in range(b):
                record.request_id, record.cycle, record.tau = rids[i], cycles[i], taus[i]
                record.accepted, record.emitted = accs[i], emitted[i]
                record.context_tokens = ctxs[i]
                record.draft_prob = None if put_prob is None else log.draft_probs[i - b]
                observe(record)
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
