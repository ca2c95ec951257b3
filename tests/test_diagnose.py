"""Diagnosis: each planted bottleneck is found, a healthy run raises nothing, evidence is right,
and recommendations come with simulated figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.diagnose import KINDS, Finding, diagnose, level_of
from analysis.metrics import compute_metrics
from analysis.planted import PLANTED_KINDS, PlantSpec, generate, healthy_trace, planted_trace
from sim import Scenario, simulate
from tracing import CycleRecord, RequestRecord, RunMeta, Trace
from tracing.errors import SpecsimError


def test_every_kind_has_a_planted_trace() -> None:
    assert set(PLANTED_KINDS) == set(KINDS)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_planted_kind_is_the_top_high_finding(kind: str, seed: int) -> None:
    findings = diagnose(planted_trace(kind, seed=seed), whatif=False)
    assert findings, kind
    assert findings[0].kind == kind
    assert findings[0].level == "high"
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_run_raises_no_alarm(seed: int) -> None:
    findings = diagnose(healthy_trace(seed=seed), whatif=False)
    assert [f.kind for f in findings if f.level != "low"] == []


@pytest.mark.parametrize(("alpha", "tau"), [(0.8, 4), (0.7, 3), (0.9, 6)])
def test_simulated_healthy_runs_raise_no_alarm(alpha: float, tau: int) -> None:
    scenario = Scenario.from_dict({
        "workload": {"requests": 60, "output_tokens": 128},
        "acceptance": {"model": "iid", "alpha": alpha},
        "policy": {"name": "fixed", "tau": tau},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.0015},
    })
    findings = diagnose(simulate(scenario, seed=3).trace, whatif=False)
    assert [f.kind for f in findings if f.level != "low"] == []


def test_generation_is_deterministic() -> None:
    a, b = planted_trace("over_speculation", seed=4), planted_trace("over_speculation", seed=4)
    assert a.cycles.drop(columns=["draft_prob", "target_prob"]).equals(
        b.cycles.drop(columns=["draft_prob", "target_prob"]))
    assert a.meta.extra["planted"] == "over_speculation" and a.meta.extra["synthetic"] is True
    assert not planted_trace("over_speculation", seed=5).cycles["accepted"].equals(a.cycles["accepted"])


def test_finding_levels_and_clipping() -> None:
    assert (level_of(0.6), level_of(0.59), level_of(0.3), level_of(0.29)) == (
        "high", "medium", "medium", "low")
    f = Finding("draft_bound", 1.7, "t", {"x": 1.0}, "r")
    assert f.severity == 1.0 and f.level == "high"
    d = f.to_dict()
    assert set(d) == {"kind", "severity", "level", "title", "evidence", "recommendation",
                      "predicted"}


def test_over_speculation_evidence() -> None:
    trace = planted_trace("over_speculation")
    m = compute_metrics(trace)
    f = next(f for f in diagnose(trace, whatif=False, metrics=m) if f.kind == "over_speculation")
    c = trace.cycles
    wasted = (c["tau"] - c["accepted"]).sum() / c["tau"].sum()
    assert f.evidence["wasted_draft_fraction"] == pytest.approx(wasted)
    assert f.evidence["mean_tau"] == pytest.approx(c.loc[c["tau"] > 0, "tau"].mean())
    assert 1 <= f.evidence["best_tau"] < f.evidence["mean_tau"]


def test_budget_bound_evidence() -> None:
    trace = planted_trace("budget_bound")
    f = next(f for f in diagnose(trace, whatif=False) if f.kind == "budget_bound")
    passes = trace.requests["verify_passes"].to_numpy()
    assert f.evidence["max_verify"] == 30
    assert f.evidence["share_at_cap"] == pytest.approx((passes >= 30).mean())
    assert passes.max() == 30


def test_verify_not_parallel_evidence_recovers_the_planted_slope() -> None:
    f = next(f for f in diagnose(planted_trace("verify_not_parallel"), whatif=False)
             if f.kind == "verify_not_parallel")
    # Planted: 20 ms + 8 ms per drafted token; the fit is over tau + 1 tokens scored.
    assert f.evidence["verify_slope_s_per_token"] == pytest.approx(0.008, rel=0.05)
    assert f.evidence["verify_intercept_s"] == pytest.approx(0.012, rel=0.1)


def test_long_context_evidence() -> None:
    f = next(f for f in diagnose(planted_trace("long_context_collapse"), whatif=False)
             if f.kind == "long_context_collapse")
    # Planted: acceptance falls from 1,000 tokens of context.
    assert 1000 <= f.evidence["falls_from_context_tokens"] <= 2000
    assert f.evidence["acceptance_short"] - f.evidence["acceptance_long"] > 0.3


def _expected_accepted_slowly(trace: Trace) -> float:
    total = 0.0
    for row in trace.cycle_records():
        for i, (q, p) in enumerate(zip(row.draft_prob or [], row.target_prob or [], strict=True)):
            if i <= row.accepted and i < row.tau:
                total += min(1.0, p / q)
    return total


def test_suspicious_acceptance_evidence_matches_a_loop() -> None:
    trace = planted_trace("suspicious_acceptance", requests=40)
    f = next(f for f in diagnose(trace, whatif=False) if f.kind == "suspicious_acceptance")
    assert f.evidence["expected_accepted"] == pytest.approx(_expected_accepted_slowly(trace))
    assert f.evidence["accepted_tokens"] == trace.cycles["accepted"].sum()
    assert f.evidence["observed_rate"] > f.evidence["allowed_rate"] + 0.2


def _greedy_trace(low_p: bool) -> Trace:
    rng = np.random.default_rng(0)
    cycles, requests = [], []
    for rid in range(20):
        t = 0.0
        for i in range(10):
            p = [0.005 if low_p and rng.random() < 0.3 else 0.9 for _ in range(4)]
            cycles.append(CycleRecord(rid, i, t, 4, 3, 4, 0.004, 0.02, 0.0, 10 + 4 * i,
                                      draft_prob=[0.8] * 4, target_prob=p))
            t += 0.024
        requests.append(RequestRecord(rid, 0.0, 0.0, 0.024, t, 10, 40, 0.0, 10))
    meta = RunMeta(source="sim", target_model="t", draft_model="d", temperature=0.0)
    return Trace.from_records(meta, requests, cycles)


def test_greedy_acceptance_of_improbable_tokens_is_suspicious() -> None:
    kinds = [f.kind for f in diagnose(_greedy_trace(low_p=True), whatif=False)]
    assert "suspicious_acceptance" in kinds
    kinds = [f.kind for f in diagnose(_greedy_trace(low_p=False), whatif=False)]
    assert "suspicious_acceptance" not in kinds


def test_honest_sampling_is_not_suspicious_even_at_high_acceptance() -> None:
    trace = generate(PlantSpec(alpha=0.95, log_probs=True, temperature=1.0, requests=60))
    assert "suspicious_acceptance" not in [f.kind for f in diagnose(trace, whatif=False)]


def test_no_cycles_is_an_error() -> None:
    meta = RunMeta(source="sim", target_model="t", draft_model="d")
    empty = Trace.from_records(meta, [RequestRecord(0, 0, 0, 0, 0, 1, 0, 0.0, 0)], [])
    with pytest.raises(SpecsimError, match="no cycles"):
        diagnose(empty)


@pytest.mark.parametrize(
    "kind", ["over_speculation", "speculation_not_paying", "queueing_bound", "draft_bound"]
)
def test_whatif_predicts_an_improvement(kind: str) -> None:
    trace = planted_trace(kind, requests=60)
    findings = diagnose(trace, draws=6)
    f = next(f for f in findings if f.kind == kind)
    p = f.predicted
    assert p["overrides"] and p["improves"] is True
    assert p["p95_s"] < p["baseline"]["p95_s"]
    assert any(a["overrides"] == p["overrides"] for a in p["alternatives"])
    assert (p["basis"], p["band"]) == ("trace", None)  # how its costs were made
    assert "Simulated with" in f.recommendation and "p95" in f.recommendation
    json.dumps([x.to_dict() for x in findings])


def test_whatif_budget_bound_replays_the_wanted_lengths() -> None:
    f = next(f for f in diagnose(planted_trace("budget_bound", requests=60), draws=6)
             if f.kind == "budget_bound")
    p = f.predicted
    assert p["assumes"]["workload.output_tokens"] == 256
    assert p["truncated_requests"] < p["baseline"]["truncated_requests"]


def test_whatif_off_leaves_predictions_empty() -> None:
    findings = diagnose(planted_trace("over_speculation", requests=30), whatif=False)
    assert findings and all(f.predicted == {} for f in findings)


@pytest.mark.parametrize(
    "scenario",
    [
        {"workload": {"requests": 1, "output_tokens": 5}},  # two cycles: nothing to fit
        {"workload": {"requests": 30}, "policy": {"name": "target_only"}},
        {"workload": {"requests": 60, "arrival": "poisson", "rate_per_s": 3.0},
         "server": {"max_batch": 8}, "acceptance": {"model": "iid", "alpha": 0.7}},
    ],
    ids=["tiny", "target_only", "batched"],
)
def test_quiet_on_runs_without_a_bottleneck(scenario: dict) -> None:
    trace = simulate(Scenario.from_dict(scenario), seed=0).trace
    assert diagnose(trace, whatif=False) == []
