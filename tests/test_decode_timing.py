"""Where a live cycle's time goes: bookkeeping between verify passes, budgets with no draft.

A fake clock advanced only by the bookkeeping makes the accounting exact: the time the policy
and the trace writer take lands in ``overhead_s``, cycles lie end to end, and the simulator's
fitted per-cycle overhead reproduces the measured decode time.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from live.decode import speculative_generate
from live.drafts import NgramDraft
from live.sampling import SamplingConfig
from sim import Scenario, simulate
from sim.calibrate.costs import fit_latency
from sim.policies.library import Policy, make_policy
from tiny import tiny_llama
from tracing import CycleRecord, RequestRecord, RunMeta, Trace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OBSERVE_S, WRITE_S = 1.0, 10.0


class Target:
    """Decode needs only .model and .device."""

    def __init__(self, model: Any) -> None:
        self.model, self.device = model, "cpu"


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowObserver(Policy):
    """fixed:tau=3 whose ``observe`` takes OBSERVE_S of the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(tau=3)
        self.clock = clock

    def observe(self, cycle: CycleRecord) -> None:
        self.clock.now += OBSERVE_S


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_llama(0, layers=2, hidden=16)


def test_bookkeeping_time_is_recorded_and_simulated(model: Any) -> None:
    clock = FakeClock()

    def slow_write(record: CycleRecord) -> None:  # a trace writer that takes WRITE_S
        clock.now += WRITE_S

    ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7]])
    r = speculative_generate(Target(model), NgramDraft(2), SlowObserver(clock), ids,
                             max_new_tokens=20, sampling=SamplingConfig(), clock=clock,
                             on_cycle=slow_write)
    c = r.cycles
    assert len(c) > 2
    # cycle 0 has no predecessor; every later cycle carries the one before it's bookkeeping
    assert c[0].overhead_s == 0.0
    assert all(x.overhead_s == OBSERVE_S + WRITE_S for x in c[1:])
    assert all(x.draft_s == 0.0 and x.verify_s == 0.0 for x in c)
    # end to end: each cycle starts where the previous one's time ended
    for prev, nxt in itertools.pairwise(c):
        assert nxt.start_s == prev.start_s + prev.draft_s + prev.verify_s + prev.overhead_s
    # the simulator's cost model, fitted from this trace, charges that time: its cycles add up
    # to the bookkeeping that ran between the first cycle's start and the last one's record
    meta = RunMeta(source="live", target_model="tiny", draft_model="ngram", policy="fixed",
                   policy_params={"tau": 3})
    req = RequestRecord(0, 0.0, 0.0, c[0].start_s, c[-1].start_s, ids.shape[1], len(r.tokens),
                        r.prefill_s, len(c))
    costs = fit_latency(Trace.from_records(meta, [req], c))
    assert costs.overhead_s * len(c) == pytest.approx((len(c) - 1) * (OBSERVE_S + WRITE_S))


def test_no_draft_spends_a_mean_verify_budget_as_the_simulator_does(model: Any) -> None:
    """Target-only steps under a mean_verify budget: the pool is drawn down per verify pass live
    exactly as in the simulator (same requests, no accepted draft tokens)."""
    spec, n_requests, max_new = "fixed:tau=2,mean_verify=3", 3, 12
    policy = make_policy(spec)
    live = [speculative_generate(Target(model), None, policy, torch.tensor([[1, 2, 3]]),
                                 max_new_tokens=max_new, sampling=SamplingConfig(),
                                 request_id=rid)
            for rid in range(n_requests)]
    scenario = Scenario.from_dict({
        "workload": {"requests": n_requests, "prompt_tokens": 3, "output_tokens": max_new},
        "acceptance": {"alpha": 0.0},  # nothing accepted: one token per pass, like no draft
        "latency": {"target_step_s": 0.01, "draft_step_s": 0.001},
        "policy": {"name": "fixed", "tau": 2},
        "budget": {"mean_verify_per_request": 3.0},
    })
    simulated = simulate(scenario, seed=0).trace.requests.sort_values("request_id")
    assert [r.verify_passes for r in live] == simulated["verify_passes"].tolist()
    assert [len(r.tokens) for r in live] == simulated["output_tokens"].tolist()
    assert sum(r.verify_passes for r in live) <= 3 * n_requests
    assert all(r.stopped == "budget" for r in live)
