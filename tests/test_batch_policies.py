"""Policies under batching: per-request state, draft length by batch size, the goodput policy."""

from __future__ import annotations

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.policies.goodput import Goodput
from sim.policies.library import (
    Adaptive,
    BudgetedPolicy,
    Heuristic,
    PolicyState,
    StepCost,
    make_policy,
    parse_tau_by_batch,
)
from tracing import CycleRecord
from tracing.errors import SpecsimError


def _state(rid: int = 0, out: int = 0, batch: int = 1, cost: StepCost | None = None,
           max_new: int = 100) -> PolicyState:
    return PolicyState(rid, 0, 10 + out, out, max_new, 0, batch, cost)


def _cycle(rid: int, tau: int, accepted: int) -> CycleRecord:
    return CycleRecord(rid, 0, 0.0, tau, accepted, accepted + 1, 0.001 * tau, 0.02, 0.0, 10)


@pytest.mark.parametrize(("alpha", "want"), [(1.0, [1, 3, 5, 7, 9]), (0.0, [5, 4, 3, 2, 1, 1])])
def test_heuristic_schedule_is_per_request_under_batching(alpha: float, want: list[int]) -> None:
    # Two requests decoded together: heuristic's tau must follow each request's own outcomes
    # (+2 after a fully accepted block, -1 otherwise). One policy object shared across the
    # batch is told both rows' outcomes each step and moves twice as fast (1, 5, 9, ...).
    tau = int(want[0])
    s = Scenario.from_dict({
        "workload": {"requests": 2, "prompt_tokens": 16, "output_tokens": 200, "concurrency": 2},
        "acceptance": {"alpha": alpha},
        "policy": {"name": "heuristic", "tau": tau},
        "server": {"max_batch": 2},
        "sim": {"baseline": False},
    })
    c = simulate(s, seed=0).trace.cycles
    for rid in (0, 1):
        assert c[c["request_id"] == rid]["tau"].tolist()[: len(want)] == want


def test_forks_keep_request_state_apart_and_share_run_knowledge() -> None:
    h = Heuristic(tau=5)
    a, b = h.fork(), h.fork()
    a.observe(_cycle(0, 5, 5))
    b.observe(_cycle(1, 5, 0))
    assert (a.next_tau(_state()), b.next_tau(_state()), h.next_tau(_state())) == (7, 4, 5)
    # adaptive: the acceptance and cost estimates are the run's, learned by every fork
    ad = Adaptive(max_tau=4)
    f1, f2 = ad.fork(), ad.fork()
    for _ in range(20):
        f1.observe(_cycle(0, 4, 4))
    assert f2.survival() == ad.survival() and f2.survival()[3] > 0.7
    # a mean_verify pool is shared: two forks in flight never overdraw it
    pool = make_policy("fixed:tau=2,mean_verify=1")
    assert isinstance(pool, BudgetedPolicy)
    m0, m1 = pool.fork(), pool.fork()
    m0.reset(0)
    m1.reset(1)
    ran = 0
    for _ in range(5):
        for m, s in ((m0, _state(0)), (m1, _state(1))):
            if not m.budget_exhausted(s):
                m.next_tau(s)
                ran += 1
    assert ran == 2 and pool.used == 2


def test_tau_by_batch_parses_and_picks_the_largest_threshold_not_above() -> None:
    p = make_policy("fixed:tau_by_batch=1:4,4:2,8:0")
    assert [p.tau_for_batch(b) for b in (1, 2, 3, 4, 7, 8, 64)] == [4, 4, 4, 2, 2, 0, 0]
    assert p.next_tau(_state(batch=5)) == 2
    assert p.next_tau(_state(batch=1, out=98)) == 1  # still clipped to what is left
    assert make_policy(p.spec()).tau_by_batch == [(1, 4), (4, 2), (8, 0)]
    assert not p.is_static
    q = make_policy("fixed:tau=3,tau_by_batch=4:1")
    assert [q.tau_for_batch(b) for b in (1, 3, 4)] == [3, 3, 1]  # below the first: tau


@pytest.mark.parametrize("bad", ["1:4,1:2", "0:3", "2:-1", "4", "a:b"])
def test_tau_by_batch_rejects_bad_tables(bad: str) -> None:
    with pytest.raises(SpecsimError, match="tau_by_batch"):
        parse_tau_by_batch("fixed", bad)
    with pytest.raises(SpecsimError):
        make_policy(f"fixed:tau_by_batch={bad}")


def _batched(policy: dict, concurrency: int, **latency: object) -> Scenario:
    data: dict = {
        "workload": {"requests": 64, "prompt_tokens": 32, "output_tokens": 48,
                     "concurrency": concurrency},
        "acceptance": {"alpha": 0.7},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.001, **latency},
        "policy": policy,
        "server": {"max_batch": 8},
        "sim": {"baseline": False},
    }
    return Scenario.from_dict(data)


def test_tau_by_batch_in_the_batch_server_follows_the_step_size() -> None:
    result = simulate(_batched({"name": "fixed", "tau_by_batch": "1:4,4:2,8:0"}, 6), seed=3)
    c = result.trace.cycles
    size = c.groupby("start_s")["tau"].transform("size")
    table = make_policy("fixed:tau_by_batch=1:4,4:2,8:0")
    want = size.map(table.tau_for_batch)
    left = c.groupby("request_id")["emitted"].transform(lambda e: 48 - e.cumsum() + e)
    assert (c["tau"] == np.minimum(want, np.maximum(left - 1, 0))).all()
    assert set(size) >= {6}  # the steps ran at batch 6 (tau 2) most of the time


def _cpu_like(batch: int, tau: int) -> float:
    """A step that costs in proportion to the tokens it scores past a small floor."""
    return 0.02 + 0.004 * batch * (tau + 1) + 0.001 * tau


def test_goodput_picks_the_argmax_of_batch_tokens_per_second() -> None:
    g = Goodput(max_tau=6, probe_every=10**6)
    members = [g.fork() for _ in range(4)]
    rng = np.random.default_rng(0)
    for m, alpha in zip(members, (0.9, 0.8, 0.3, 0.1), strict=True):
        for _ in range(40):
            accepted = 0
            while accepted < 6 and rng.random() < alpha:
                accepted += 1
            m.observe(_cycle(0, 6, accepted))
    for batch in (1, 2, 4):
        rows, states = members[:batch], [_state(i, batch=batch, cost=_cpu_like)
                                          for i in range(batch)]
        got = g.plan_batch(rows, states)
        rates = []
        for t in range(7):
            tokens = sum(1 + sum(m.survival()[:t]) for m in rows)
            rates.append(tokens / _cpu_like(batch, t))
        assert got == [int(np.argmax(rates))] * batch
    assert g.plan_batch(members[:1], [_state(batch=1, cost=_cpu_like)])[0] > 0
    # at batch 4 with two weak drafts, scoring extra positions costs more than they bring
    assert g.plan_batch(members, [_state(i, batch=4, cost=_cpu_like) for i in range(4)]) == [0] * 4


def test_goodput_cold_start_and_single_stream_costs() -> None:
    g = make_policy("goodput:tau=3")
    assert isinstance(g, Goodput)
    assert g.next_tau(_state()) == 3  # nothing measured, no step cost given
    assert g.next_tau(_state(out=98)) == 1


def test_goodput_beats_fixed_tau_under_load_on_a_cpu_like_server() -> None:
    # A CPU-like batched profile: a pass costs in proportion to rows x tokens. At concurrency 8
    # fixed tau=4 pays for 5 positions per row; goodput drafts less and finishes sooner. At
    # concurrency 1 it keeps speculating.
    table = [[0.01 + 0.004 * b * n for n in range(1, 10)] for b in range(1, 9)]
    lat = {"batch_verify_table_s": table, "draft_step_s": 0.0005}
    fixed8 = simulate(_batched({"name": "fixed", "tau": 4}, 8, **lat), seed=1).figures
    good8 = simulate(_batched({"name": "goodput"}, 8, **lat), seed=1).figures
    assert good8["latency_s"]["mean"] < 0.9 * fixed8["latency_s"]["mean"]
    good1 = simulate(_batched({"name": "goodput"}, 1, **lat), seed=1)
    assert good1.figures["mean_tau"] > 1.0
    assert good8["mean_tau"] < good1.figures["mean_tau"]
