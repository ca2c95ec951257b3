"""Replay by output position: what a trace says about its text, and predictions from it."""

from __future__ import annotations

import numpy as np
import pytest

from sim import Scenario, scenario_from_trace, simulate
from sim.models.positions import UNKNOWN, PositionRecord
from tracing import CycleRecord, RequestRecord, RunMeta, Trace


def test_record_from_cycles_exact_censored_and_short() -> None:
    # fixed tau=4 asks 4 each cycle: accept 2 (exact), accept all 4 (censored), a 1-token
    # proposal (the draft ran short) rejected, then nothing proposed at all
    tau, acc = np.array([4, 4, 1, 0]), np.array([2, 4, 0, 0])
    rec = PositionRecord.from_cycles(tau, acc, acc + 1, np.full(4, 4))
    assert rec.at(0) == (2, True, UNKNOWN) and rec.at(1) == (1, True, UNKNOWN)
    assert rec.at(2) == (0, True, UNKNOWN)  # the draft's wrong token: 0 accepted from here
    assert [rec.at(p)[:2] for p in range(3, 7)] == [(4, False), (3, False), (2, False), (1, False)]
    assert rec.at(7) == (0, False, UNKNOWN)  # the bonus token: nothing known
    assert rec.at(8) == (0, True, 1)  # proposed 1 of 4, rejected
    assert rec.at(9) == (0, False, 0)  # proposed none
    assert rec.at(50) == (0, False, UNKNOWN)


def _text_trace(agree: list[np.ndarray], tau: int, policy: str = "fixed") -> Trace:
    """What a greedy decoder drafting ``tau`` tokens records on texts whose draft agreement at
    output position p is ``agree[r][p]``."""
    meta = RunMeta(source="live", target_model="t", draft_model="ngram", policy=policy,
                   policy_params={"tau": tau}, temperature=0.0)
    cycles, requests, now = [], [], 0.0
    for rid, a in enumerate(agree):
        n, out, cycle, start = a.size, 0, 0, now
        while out < n:
            t = min(tau, n - out - 1)
            acc = min(t, int(a[out]))
            emitted = acc + 1
            cycles.append(CycleRecord(rid, cycle, now, t, acc, emitted, 1e-4 * t, 0.02, 0.0,
                                      20 + out))
            now += 0.02 + 1e-4 * t
            out, cycle = out + emitted, cycle + 1
        requests.append(RequestRecord(rid, start, start, start + 0.02, now, 20, n, 0.0, cycle))
    return Trace.from_records(meta, requests, cycles)


def _texts(seed: int, top: int) -> list[np.ndarray]:
    """Agreements that look like copy-heavy text: runs counting down to 0, then a fresh run."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(6):
        a: list[int] = []
        while len(a) < 80:
            run = int(rng.integers(0, top))
            a.extend(range(run, -1, -1))
        texts.append(np.array(a[:80]))
    return texts


def _cycles(trace: Trace) -> list[tuple[int, int, int]]:
    c = trace.cycles.sort_values(["request_id", "cycle"])
    return list(zip(c["request_id"], c["tau"], c["accepted"], strict=True))


def _positions(trace: Trace) -> list[tuple[int, int, int, int]]:
    """(request, output position, tau, accepted) of every cycle."""
    c = trace.cycles.sort_values(["request_id", "cycle"])
    pos = c.groupby("request_id")["emitted"].cumsum() - c["emitted"]
    return list(zip(c["request_id"], pos, c["tau"], c["accepted"], strict=True))


@pytest.mark.parametrize("tau", [1, 3, 8])
def test_replay_reproduces_the_trace_cycle_for_cycle(tau: int) -> None:
    trace = _text_trace(_texts(0, 12), tau)
    sim = simulate(scenario_from_trace(trace), trace, seed=5).trace
    assert _cycles(sim) == _cycles(trace)


@pytest.mark.parametrize("other", [1, 2, 4, 6])
def test_another_tau_reads_the_same_text(other: int) -> None:
    """A trace at tau=8 whose every cycle stopped short of 8 knows the whole text, so every
    shorter draft length is predicted cycle for cycle."""
    texts = _texts(1, 8)  # agreements 0..7 < 8: nothing censored
    a, b = _text_trace(texts, 8), _text_trace(texts, other)
    scenario = scenario_from_trace(a).with_overrides({"policy.tau": other})
    assert _cycles(simulate(scenario, a, seed=3).trace) == _cycles(b)


def test_unknown_positions_are_drawn_and_change_with_the_seed() -> None:
    """From tau=1 half the positions are unknown: a longer draft's depths are drawn there."""
    texts = _texts(2, 10)
    a = _text_trace(texts, 1)
    scenario = scenario_from_trace(a).with_overrides({"policy.tau": 6})
    runs = [simulate(scenario, a, seed=s).trace for s in (1, 2)]
    assert _cycles(runs[0]) != _cycles(runs[1])
    assert runs[0].cycles["tau"].max() == 6
    # where tau=1 saw the draft rejected, nothing is accepted; where it saw it accepted, at least 1
    seen = {(r, p): acc for r, p, _, acc in _positions(a)}
    checked = 0
    for r, p, tau, acc in _positions(runs[0]):
        if tau > 0 and (r, p) in seen:
            assert (acc == 0) if seen[r, p] == 0 else (acc >= 1)
            checked += 1
    assert checked > 20


def _no_match_trace(policy: dict, none: float = 0.25) -> Trace:
    """A simulated n-gram-like run: the draft has no proposal at a quarter of its cycles."""
    s = Scenario.from_dict({
        "workload": {"requests": 40, "prompt_tokens": 64, "output_tokens": 96},
        "acceptance": {"alpha": 0.8},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.0001},
        "draft": {"no_proposal_prob": none},
        "policy": policy,
    })
    return simulate(s, seed=5).trace


@pytest.mark.parametrize("policy", [{"name": "adaptive"}, {"name": "heuristic"}])
def test_replaying_the_policy_tells_no_proposal_from_its_own_choice(policy: dict) -> None:
    from sim.calibrate.acceptance import fit_proposals
    from sim.calibrate.positions import replay_asks

    trace = _no_match_trace(policy)
    c = trace.cycles.sort_values(["request_id", "cycle"], kind="stable")
    asked = replay_asks(trace, c)
    assert asked is not None
    tau = c["tau"].to_numpy()
    assert (tau <= asked).all()
    # the tau = 0 cycles the policy did not choose are the draft's: their share is the
    # configured no-proposal probability (adaptive drafts always here: the draft is nearly free)
    none, _ = fit_proposals(trace)
    assert none == pytest.approx(0.25, abs=0.04)
    assert ((tau == 0) & (asked > 0)).sum() > 0.8 * (tau == 0).sum()


def test_a_replay_that_disagrees_with_the_trace_is_not_used() -> None:
    import dataclasses

    from sim.calibrate.positions import replay_asks

    trace = _no_match_trace({"name": "heuristic"})
    c = trace.cycles.sort_values(["request_id", "cycle"], kind="stable")
    # claimed to be a heuristic that never drafts past 2: the trace drafted more than that
    meta = dataclasses.replace(trace.meta, policy_params={"tau": 1, "max_tau": 2})
    assert replay_asks(Trace(meta, trace.requests, trace.cycles, "x"), c) is None
    unknown = dataclasses.replace(trace.meta, policy="no_such_policy")
    assert replay_asks(Trace(unknown, trace.requests, trace.cycles, "x"), c) is None


def test_coverage_is_what_the_source_record_decides() -> None:
    from sim.calibrate.positions import coverage

    def run(policy: dict, draft_step_s: float, alpha: float) -> Trace:
        return simulate(Scenario.from_dict({
            "workload": {"requests": 30, "prompt_tokens": 64, "output_tokens": 64},
            "acceptance": {"alpha": alpha},
            "latency": {"target_step_s": 0.02, "draft_step_s": draft_step_s},
            "policy": policy}), seed=2).trace

    deep = run({"name": "fixed", "tau": 6}, 0.001, 0.8)
    assert coverage(deep, deep) == 1.0  # every cycle of a replay is decided by its own record
    shallow = simulate(scenario_from_trace(deep).with_overrides({"policy.tau": 2}), deep).trace
    # drafting 2 where 6 were drafted is mostly read, not drawn (not all: a fully accepted
    # cycle only bounds its last positions from below -- "at least 1" at its sixth)
    assert coverage(deep, shallow) > 0.8
    # an adaptive run that found speculation not paying barely drafted: it decides little of
    # what a fixed tau=2 run would draft, although its probes went deep somewhere
    sparse = run({"name": "adaptive", "probe_every": 8}, 0.03, 0.3)
    assert (sparse.cycles["tau"] > 0).mean() < 0.3
    again = simulate(scenario_from_trace(sparse).with_overrides(
        {"policy.name": "fixed", "policy.tau": 2}), sparse).trace
    assert coverage(sparse, again) < 0.5
