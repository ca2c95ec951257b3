"""Latency model: fits from traces, the roofline, hardware rescaling."""

from __future__ import annotations

import math

import pytest

from sim import Scenario, simulate
from sim.calibrate.costs import fit_latency
from sim.models.catalog import CATALOG_BAND, get_device
from sim.models.costmodel import SMOLLM2_135M, pass_s
from sim.models.latency import CostModel, resolve_costs
from tracing.errors import SpecsimError


def _measured(policy: dict, **latency: float) -> Scenario:
    return Scenario.from_dict(
        {
            "workload": {
                "requests": 60,
                "prompt_tokens": {"dist": "uniform", "low": 20, "high": 400},
                "output_tokens": 64,
            },
            "acceptance": {"alpha": 0.7},
            "latency": latency,
            "policy": policy,
        }
    )


def test_fit_recovers_costs_exactly_from_a_noise_free_trace() -> None:
    truth = {
        "target_step_s": 0.03,
        "verify_slope_s": 0.004,
        "draft_step_s": 0.002,
        "prefill_s_per_token": 0.001,
        "overhead_s": 0.0005,
        "context_s_per_token": 1e-5,
    }
    trace = simulate(_measured({"name": "heuristic"}, **truth)).trace  # tau varies
    fitted = fit_latency(trace)
    for key, value in truth.items():
        assert getattr(fitted, key) == pytest.approx(value, rel=1e-6), key


def test_fit_with_constant_tau_puts_cost_in_the_step() -> None:
    trace = simulate(_measured({"name": "fixed", "tau": 3}, verify_slope_s=0.01)).trace
    fitted = fit_latency(trace)
    # tau never varies, so no slope can be told apart: the cycle cost is reproduced instead
    costs = CostModel(
        fitted.target_step_s, fitted.verify_slope_s, fitted.draft_step_s, 0, 0, 0, math.inf
    )
    assert costs.verify_s(4) == pytest.approx(0.02 + 3 * 0.01, rel=1e-6)


def test_roofline_verify_cost() -> None:
    c = CostModel(0.02, 0.0, 0.002, 0.0, 0.0, 0.0, ridge_tokens=100.0)
    assert c.verify_s(5) == pytest.approx(0.02)  # memory-bound: flat
    assert c.verify_s(100, batch=20) == pytest.approx(0.02)
    assert c.verify_s(400, batch=80) == pytest.approx(0.08)  # compute-bound: linear
    assert c.draft_step(50) == pytest.approx(0.002)
    assert c.draft_step(200) == pytest.approx(0.004)


def test_a_batched_pass_without_a_profile_costs_a_pass_of_as_many_tokens() -> None:
    # a CPU engine's trace (llama.cpp): each extra token of a pass costs 10 ms; a pass over four
    # sequences scoring one token each goes through the weights with four tokens too
    c = CostModel(0.024, 0.010, 0.0, 0.0, 0.0, 0.0, ridge_tokens=math.inf)
    assert c.verify_s(4, batch=4) == pytest.approx(c.verify_s(4, batch=1)) == pytest.approx(0.054)
    assert c.verify_s(20, batch=4) == pytest.approx(0.024 + 19 * 0.010)
    # where the single-sequence pass of that many tokens was measured, that is the price
    t = CostModel(0.024, 0.010, 0.0, 0.0, 0.0, 0.0, ridge_tokens=math.inf,
                  verify_table=(0.024, 0.039, 0.050, 0.071))
    assert t.verify_s(4, batch=4) == pytest.approx(0.071)
    assert t.verify_s(2, batch=2) == pytest.approx(0.039)
    assert t.batch_step([0, 0, 0, 0])[1] == pytest.approx(0.071)


def test_scenario_hardware_names_are_exact_catalog_entries() -> None:
    for name in ("A100", "H100", "H100-PCIE-80GB", "NVIDIA L40S", "L4", "CPU"):
        Scenario.from_dict({"latency": {"hardware": name, "target_params": 1e8}})
    for name in ("H100X", "L40SX", "NVIDIA H100"):
        with pytest.raises(SpecsimError, match=r"\[latency\] hardware = .*: unknown device"):
            Scenario.from_dict({"latency": {"hardware": name}})
    with pytest.raises(SpecsimError, match="dtype"):
        Scenario.from_dict({"latency": {"dtype": "fp8"}})


def test_moving_scenario_numbers_to_other_hardware_prices_them_by_the_cost_model() -> None:
    base = Scenario.from_dict(
        {
            "latency": {
                "target_step_s": 0.02,
                "draft_step_s": 0.002,
                "prefill_s_per_token": 1e-4,
                "source_hardware": "A100",
                "target_params": 134515008,
            }
        }
    )
    same = resolve_costs(base)
    assert same.target_step_s == 0.02 and same.basis == "scenario" and same.band is None
    moved = resolve_costs(base.with_overrides({"latency.hardware": "H100"}))
    shape = SMOLLM2_135M.with_geometry(params=134515008)
    h100 = get_device("H100")
    assert moved.basis == "catalog" and moved.band == CATALOG_BAND
    assert moved.target_step_s == pytest.approx(pass_s(h100, shape, "bf16", 1))
    assert moved.verify_s(5) == pytest.approx(pass_s(h100, shape, "bf16", 5))
    # a draft of unknown kind moves with the target
    assert moved.draft_step_s == pytest.approx(0.002 * moved.target_step_s / 0.02)
    assert resolve_costs(base.with_overrides({"latency.hardware": "A100"})).basis == "scenario"
    with pytest.raises(SpecsimError, match="needs the target's shape"):
        resolve_costs(base.with_overrides({"latency.hardware": "H100",
                                           "latency.target_params": 0.0}))


def test_first_principles_costs_and_draft_override() -> None:
    s = Scenario.from_dict(
        {"latency": {"hardware": "H100", "target_params": 7e9, "draft_params": 1e8},
         "target": {"shape": "assumed"}}
    )
    h100 = get_device("H100")
    target = SMOLLM2_135M.with_geometry(params=7e9)
    c = resolve_costs(s)
    assert "ASSUMED target shape" in c.shape_note  # said wherever the figures are shown
    assert c.target_step_s == pytest.approx(pass_s(h100, target, "bf16", 1))
    assert c.draft_step_s == pytest.approx(pass_s(h100, target.with_geometry(params=1e8),
                                                  "bf16", 1))
    d = resolve_costs(s.with_overrides({"draft.step_s": 0.0042}))
    assert d.draft_step_s == 0.0042
    e = resolve_costs(s.with_overrides({"draft.params": 1e9}))
    assert e.draft_step_s == pytest.approx(pass_s(h100, target.with_geometry(params=1e9),
                                                  "bf16", 1))
    # fp32 reads twice the bytes of bf16 (a 7B model is weight-bound beyond its fixed cost)
    f = resolve_costs(s.with_overrides({"latency.dtype": "fp32"}))
    assert f.target_step_s == pytest.approx(pass_s(h100, target, "fp32", 1))
    assert f.target_step_s > c.target_step_s


def _with_profile(trace, seconds: list[float]):  # type: ignore[no-untyped-def]
    import dataclasses

    from tracing.trace import Trace

    extra = {**(trace.meta.extra or {}), "verify_profile_s": {"seconds": seconds}}
    return Trace(dataclasses.replace(trace.meta, extra=extra), trace.requests, trace.cycles,
                 trace.path)


# A CPU-shaped verify cost by tau (1 token cheap, 3 tokens dearer than 4): no line fits it.
CPU_TABLE = [0.060, 0.110, 0.130, 0.100, 0.112, 0.115, 0.120, 0.118, 0.125]


def test_profile_fills_draft_lengths_the_trace_never_measured() -> None:
    # A fixed tau=4 run measures 5-token passes (and 1-token ones where it could not draft);
    # its profile, taken at another level (0.8x), has the shape of every other length.
    trace = simulate(_measured({"name": "fixed", "tau": 4}, verify_table_s=CPU_TABLE,
                               target_step_s=0.06)).trace
    assert set(trace.cycles["tau"]) <= {0, 1, 2, 3, 4}
    without = fit_latency(trace)
    fitted = fit_latency(_with_profile(trace, [0.8 * x for x in CPU_TABLE]))
    # the profile, scaled back to the trace's level, gives every tau's true cost (to the
    # small context term the line fit leaves)
    assert fitted.verify_table_s == pytest.approx(CPU_TABLE, rel=1e-3)
    # without it, tau 2 comes from a line and tau 6 from nothing at all
    assert len(without.verify_table_s) <= 5
    costs = resolve_costs(Scenario.from_dict({"latency": {**_latency_of(fitted)}}))
    assert costs.verify_s(3) == pytest.approx(0.130, rel=1e-3)
    assert costs.verify_s(7) == pytest.approx(0.120, rel=1e-3)


def test_profile_yields_to_draft_lengths_measured_often() -> None:
    trace = simulate(_measured({"name": "fixed", "tau": 4}, verify_table_s=CPU_TABLE,
                               target_step_s=0.06)).trace
    # a profile whose tau=4 entry is off in shape: 300 measured passes outweigh it
    skewed = [0.8 * x for x in CPU_TABLE]
    skewed[4] *= 1.5
    fitted = fit_latency(_with_profile(trace, skewed))
    n4 = int((trace.cycles["tau"] == 4).sum())
    assert n4 > 100
    assert fitted.verify_table_s[4] == pytest.approx(CPU_TABLE[4], rel=0.05)
    assert fitted.verify_table_s[4] != pytest.approx(CPU_TABLE[4], rel=1e-4)  # but it counts


def test_a_malformed_profile_is_an_error_naming_the_key() -> None:
    from tracing.errors import SpecsimError

    trace = simulate(_measured({"name": "fixed", "tau": 2})).trace
    with pytest.raises(SpecsimError, match="verify_profile_s"):
        fit_latency(_with_profile(trace, [0.1, -1.0]))


def _latency_of(fitted):  # type: ignore[no-untyped-def]
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(fitted).items()
            if k in ("target_step_s", "verify_slope_s", "draft_step_s", "verify_table_s")}


def _equal_requests(**latency: object) -> Scenario:
    return Scenario.from_dict({
        "workload": {"requests": 200, "prompt_tokens": 64, "output_tokens": 64},
        "acceptance": {"alpha": 0.7},
        "latency": {"target_step_s": 0.03, "draft_step_s": 0.002, **latency},
        "policy": {"name": "fixed", "tau": 3},
    })


def test_speed_spread_is_fitted_from_the_requests() -> None:
    noisy = simulate(_equal_requests(speed_cv=0.1)).trace
    assert fit_latency(noisy).speed_cv == pytest.approx(0.1, abs=0.02)
    steady = simulate(_equal_requests()).trace
    assert fit_latency(steady).speed_cv < 1e-6


def test_speed_noise_raises_the_tail_and_leaves_acceptance_alone() -> None:
    quiet = simulate(_equal_requests())
    noisy = simulate(_equal_requests(speed_cv=0.05))
    # the same cycles: noise has its own random stream
    for col in ("tau", "accepted"):
        assert (quiet.trace.cycles[col].to_numpy() == noisy.trace.cycles[col].to_numpy()).all()
    q, n = quiet.figures["latency_s"], noisy.figures["latency_s"]
    assert n["p95"] > 1.03 * q["p95"]
    assert n["mean"] == pytest.approx(q["mean"], rel=0.02)  # speeds have mean 1
    # another device: this machine's noise does not carry over
    moved = {"hardware": "H100", "source_hardware": "CPU", "target_params": 134515008.0}
    a = simulate(_equal_requests(speed_cv=0.05, **moved)).figures["latency_s"]
    b = simulate(_equal_requests(**moved)).figures["latency_s"]
    assert a["p95"] == pytest.approx(b["p95"], rel=1e-9)


def test_target_only_baseline_pays_only_the_targets_share_of_prefill() -> None:
    from sim.models.latency import target_prefill_share

    def speedup(**params: float) -> float:
        s = _equal_requests(prefill_s_per_token=0.002, **params)
        return float(simulate(s).figures["speedup_vs_target_only"])

    # a prefill that also filled a draft of half the target's size: target-only decoding
    # would have spent 2/3 of it
    share = target_prefill_share(
        Scenario.from_dict({"latency": {"target_params": 2e8, "draft_params": 1e8}}).latency)
    assert share == pytest.approx(2 / 3)
    assert speedup(target_params=2e8, draft_params=1e8) < speedup()
    assert speedup(target_params=2e8) == pytest.approx(speedup())  # model-free draft: all


def test_a_replay_draws_request_noise_from_the_traces_own_speeds() -> None:
    import numpy as np

    from sim import scenario_from_trace
    from sim.calibrate import calibrate
    from sim.calibrate.costs import request_speeds
    from sim.models.latency import draw_empirical

    trace = simulate(_equal_requests(speed_cv=0.2)).trace
    replay = scenario_from_trace(trace)
    assert replay.latency.speed_model == "empirical"
    cal = calibrate(replay, trace)
    assert cal.speed_pool is not None
    assert np.allclose(cal.speed_pool, request_speeds(trace, cal.costs))
    drawn = draw_empirical(cal.speed_pool, 500, seed=3)
    assert set(np.round(drawn, 12)) <= set(np.round(cal.speed_pool, 12))
    assert np.array_equal(drawn, draw_empirical(cal.speed_pool, 500, seed=3))
    # lognormal on request, and none on another device
    lognormal = replay.with_overrides({"latency.speed_model": "lognormal"})
    assert calibrate(lognormal, trace).speed_pool is None
    moved = replay.with_overrides({"latency.hardware": "H100", "target.model": "smollm2"})
    assert calibrate(moved, trace).speed_pool is None
