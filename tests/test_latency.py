"""Latency model: fits from traces, the roofline, hardware rescaling."""

from __future__ import annotations

import math

import pytest

from sim import CATALOG, Scenario, simulate
from sim.hardware import hardware_of_device
from sim.latency import CostModel, fit_latency, resolve_costs


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


def test_catalog_and_ridge() -> None:
    for name in ("A100", "H100", "H200", "L4", "CPU"):
        assert name in CATALOG
    h100 = CATALOG["H100"]
    assert h100.ridge_tokens == pytest.approx(989e12 / 3350e9, rel=1e-9)
    # a 7B bf16 model reads 14 GB per step
    assert h100.step_s(7e9) == pytest.approx(14e9 / 3350e9)
    assert h100.step_s(7e9, tokens=10_000) > h100.step_s(7e9)
    assert hardware_of_device("cuda:0 NVIDIA H100 80GB HBM3") is h100
    assert hardware_of_device("cpu") is CATALOG["CPU"]
    assert hardware_of_device("mps") is None


def test_rescaling_a_trace_to_other_hardware() -> None:
    base = Scenario.from_dict(
        {
            "latency": {
                "target_step_s": 0.02,
                "draft_step_s": 0.002,
                "prefill_s_per_token": 1e-4,
                "source_hardware": "A100",
            }
        }
    )
    same = resolve_costs(base)
    assert same.target_step_s == 0.02 and math.isinf(same.ridge_tokens)
    moved = resolve_costs(base.with_overrides({"latency.hardware": "H100"}))
    assert moved.target_step_s == pytest.approx(0.02 * 2039 / 3350)
    assert moved.draft_step_s == pytest.approx(0.002 * 2039 / 3350)
    assert moved.prefill_s_per_token == pytest.approx(1e-4 * 312 / 989)
    assert moved.ridge_tokens == pytest.approx(CATALOG["H100"].ridge_tokens)


def test_first_principles_costs_and_draft_override() -> None:
    s = Scenario.from_dict(
        {"latency": {"hardware": "H100", "target_params": 7e9, "draft_params": 1e8}}
    )
    c = resolve_costs(s)
    assert c.target_step_s == pytest.approx(CATALOG["H100"].step_s(7e9))
    assert c.draft_step_s == pytest.approx(CATALOG["H100"].step_s(1e8))
    d = resolve_costs(s.with_overrides({"draft.step_s": 0.0042}))
    assert d.draft_step_s == 0.0042
    e = resolve_costs(s.with_overrides({"draft.params": 1e9}))
    assert e.draft_step_s == pytest.approx(CATALOG["H100"].step_s(1e9))
