"""Metrics: hand-computed values on a tiny trace, the registry, buckets, the tau curve."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.metrics import (
    METRICS,
    compute_metrics,
    context_buckets,
    fit_verify,
    metric,
    tau_curve,
)
from analysis.planted import PLANTED_KINDS, PlantSpec, generate, planted_trace
from tracing import CycleRecord, RequestRecord, RunMeta, Trace, validate_trace

# (tau, accepted, emitted, draft_s, verify_s, context_tokens); overhead 1 ms each.
# verify_s = 0.010 + 0.002 * (tau + 1) exactly, so the fit is exact.
R0 = [(4, 4, 5, 0.004, 0.020, 10), (4, 1, 2, 0.004, 0.020, 15),
      (2, 0, 1, 0.002, 0.016, 17), (0, 0, 1, 0.0, 0.012, 18)]
R1 = [(3, 3, 4, 0.003, 0.018, 20), (3, 2, 2, 0.003, 0.018, 24)]  # the last one stops early


def hand_trace() -> Trace:
    """r0: arrives 0, starts 0.5, prefill 0.1; r1: arrives 0.2, starts 0.682, prefill 0.05."""
    cycles: list[CycleRecord] = []
    ends = []
    for rid, (start, prefill, plan) in enumerate(((0.5, 0.1, R0), (0.682, 0.05, R1))):
        t = start + prefill
        for i, (tau, acc, emit, d, v, ctx) in enumerate(plan):
            cycles.append(CycleRecord(rid, i, t, tau, acc, emit, d, v, 0.001, ctx))
            t += d + v + 0.001
        ends.append(t)
    requests = [
        RequestRecord(0, 0.0, 0.5, 0.625, ends[0], 10, 9, 0.1, 4),
        RequestRecord(1, 0.2, 0.682, 0.754, ends[1], 20, 6, 0.05, 2),
    ]
    meta = RunMeta(source="sim", target_model="t", draft_model="d")
    return Trace.from_records(meta, requests, cycles)


@pytest.fixture(scope="module")
def m() -> dict:
    trace = hand_trace()
    validate_trace(trace)
    return compute_metrics(trace)


def test_vllm_words_by_hand(m: dict) -> None:
    # Spec cycles: 5; drafted 16, accepted 10, emitted 14, sum(tau + 1) = 21.
    assert m["spec_cycles"] == 5
    assert m["draft_acceptance_rate"] == pytest.approx(10 / 16)
    assert m["mean_acceptance_length"] == pytest.approx(1 + 10 / 5)
    assert m["system_efficiency"] == pytest.approx(14 / 21)
    assert m["acceptance_by_position"] == pytest.approx([4 / 5, 3 / 5, 2 / 4, 1 / 2])
    assert m["acceptance_hazard_by_position"] == pytest.approx([4 / 5, 3 / 4, 2 / 3, 1.0])


def test_prefix_and_waste_by_hand(m: dict) -> None:
    assert m["mean_accepted"] == pytest.approx(10 / 5)
    assert m["full_accept_fraction"] == pytest.approx(2 / 5)
    assert m["mean_accepted_fraction"] == pytest.approx((1 + 0.25 + 0 + 1 + 2 / 3) / 5)
    assert m["tokens_per_cycle"] == pytest.approx(14 / 5)
    assert m["tokens_per_verify_pass"] == pytest.approx(15 / 6)
    assert m["wasted_draft_tokens"] == 6
    assert m["wasted_draft_fraction"] == pytest.approx(6 / 16)
    # draft_s * (tau - accepted) / tau: 0.004 * 3/4 + 0.002 * 2/2 + 0.003 * 1/3
    assert m["wasted_draft_s"] == pytest.approx(0.003 + 0.002 + 0.001)


def test_time_shares_by_hand(m: dict) -> None:
    total = 0.682 + (0.682 + 0.05 + 0.044 - 0.2)
    t = m["time_s"]
    assert t["queue"] == pytest.approx(0.5 + 0.482)
    assert t["prefill"] == pytest.approx(0.15)
    assert t["draft"] == pytest.approx(0.016)
    assert t["verify"] == pytest.approx(0.104)
    assert t["overhead"] == pytest.approx(0.006)
    assert t["other"] == pytest.approx(0.0, abs=1e-9)
    assert m["time_share"]["queue"] == pytest.approx(0.982 / total)
    assert sum(m["time_share"].values()) == pytest.approx(1.0)
    assert m["cycle_time_share"]["verify"] == pytest.approx(0.104 / 0.126)


def test_costs_and_speedup_by_hand(m: dict) -> None:
    fit = m["verify_fit"]
    assert fit["intercept_s"] == pytest.approx(0.010, abs=1e-9)
    assert fit["slope_s_per_token"] == pytest.approx(0.002, abs=1e-9)
    assert fit["one_token_s"] == pytest.approx(0.012, abs=1e-9)
    assert fit["ratio"] == pytest.approx(0.002 / 0.012, rel=1e-6)
    costs = m["costs"]
    assert costs["target_only_source"] == "fit"  # one tau=0 cycle is too few to measure
    assert costs["target_only_token_s"] == pytest.approx(0.013, rel=1e-6)
    assert costs["draft_step_s"] == pytest.approx(0.016 / 16)
    # target-only: prefill 0.15 + 15 tokens * 13 ms; speculative: prefill 0.15 + cycles 0.126
    assert m["speedup_vs_target_only"] == pytest.approx((0.15 + 15 * 0.013) / (0.15 + 0.126))


def test_latency_ttft_tpot_passes_by_hand(m: dict) -> None:
    assert m["latency_s"]["mean"] == pytest.approx((0.682 + 0.576) / 2)
    assert m["ttft_s"]["mean"] == pytest.approx((0.625 + 0.554) / 2)
    assert m["tpot_s"]["mean"] == pytest.approx(((0.682 - 0.625) / 8 + (0.776 - 0.754) / 5) / 2)
    assert m["queue_s"]["p50"] == pytest.approx((0.5 + 0.482) / 2)
    assert m["verify_passes"]["mean"] == 3.0
    assert m["verify_passes"]["max"] == 4.0


def test_tau_curve_by_hand(m: dict) -> None:
    curve = tau_curve(m, 4)
    assert [p["tau"] for p in curve] == [0, 1, 2, 3, 4]
    assert curve[0]["cycle_s"] == pytest.approx(0.013, rel=1e-6)
    assert curve[2]["tokens_per_cycle"] == pytest.approx(1 + 0.8 + 0.8 * 0.75)
    assert curve[2]["cycle_s"] == pytest.approx(2 * 0.001 + 0.010 + 0.002 * 3 + 0.001, rel=1e-6)
    # Positions past the measured ones reuse the last hazard (1.0 here).
    longer = tau_curve(m, 6)
    assert longer[6]["tokens_per_cycle"] - longer[5]["tokens_per_cycle"] == pytest.approx(
        longer[5]["tokens_per_cycle"] - longer[4]["tokens_per_cycle"])


def test_every_registered_metric_is_computed(m: dict) -> None:
    for entry in METRICS:
        assert entry.name in m, entry.name
        assert entry.formula and entry.unit and entry.description
    assert metric("system_efficiency").formula.startswith("sum(emitted)")
    with pytest.raises(KeyError):
        metric("nope")


def test_context_buckets_follow_acceptance() -> None:
    trace = planted_trace("long_context_collapse")
    buckets = context_buckets(trace.cycles)
    assert len(buckets) >= 3
    assert sum(b["cycles"] for b in buckets) == int((trace.cycles["tau"] > 0).sum())
    assert buckets[0]["acceptance_rate"] > 0.5 > 0.25 > buckets[-1]["acceptance_rate"]
    lows = [b["context_lo"] for b in buckets]
    assert lows == sorted(lows)


def test_fit_verify_drops_constant_tau() -> None:
    trace = planted_trace("healthy", requests=5)
    c = trace.cycles[trace.cycles["tau"] == 4]
    fit = fit_verify(c)
    assert fit["tau_levels"] == 1 and fit["slope_s_per_token"] == 0.0
    assert fit["intercept_s"] == pytest.approx(c["verify_s"].mean(), rel=0.05)


@pytest.mark.parametrize("kind", ["healthy", *PLANTED_KINDS])
def test_metrics_are_json_and_consistent(kind: str) -> None:
    trace = planted_trace(kind, requests=30)
    out = compute_metrics(trace)
    json.dumps(out)  # plain Python numbers only
    assert out["wasted_draft_fraction"] == pytest.approx(1 - out["draft_acceptance_rate"])
    assert out["tokens_per_verify_pass"] == pytest.approx(
        trace.requests["output_tokens"].sum() / len(trace.cycles))
    assert 0 <= out["system_efficiency"] <= 1


@settings(max_examples=15, deadline=None)
@given(
    alpha=st.floats(0.05, 0.95),
    tau=st.integers(0, 8),
    slope=st.floats(0.0, 0.01),
    draft=st.floats(0.0005, 0.01),
    seed=st.integers(0, 2**16),
)
def test_metric_invariants_on_random_runs(
    alpha: float, tau: int, slope: float, draft: float, seed: int
) -> None:
    spec = PlantSpec(requests=6, output_tokens=(20, 60), alpha=alpha, tau=tau,
                     verify_slope_s=slope, draft_step_s=draft, seed=seed, noise=0.0)
    trace = generate(spec)
    validate_trace(trace)
    out = compute_metrics(trace)
    assert 0.0 <= out["draft_acceptance_rate"] <= 1.0
    assert out["wasted_draft_tokens"] + out["accepted_tokens"] == out["drafted_tokens"]
    assert out["speedup_vs_target_only"] > 0
    assert all(0.0 <= p <= 1.0 for p in out["acceptance_hazard_by_position"])
    assert sum(b["cycles"] for b in out["context_buckets"]) in (0, out["spec_cycles"])
    # Without noise the fit recovers the planted verify cost exactly once tau varies.
    if out["verify_fit"]["tau_levels"] > 1:
        assert out["verify_fit"]["slope_s_per_token"] == pytest.approx(slope, abs=1e-9)
    curve = tau_curve(out, 4)
    assert curve[0]["tokens_per_cycle"] == 1.0
    assert all(b["tokens_per_cycle"] >= a["tokens_per_cycle"] for a, b in itertools.pairwise(curve))
