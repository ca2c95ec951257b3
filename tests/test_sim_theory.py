"""The simulator against closed forms: tokens per cycle, speedup, M/D/1 and M/G/1 waiting."""

from __future__ import annotations

import numpy as np
import pytest

from sim import Scenario, simulate
from tracing import validate_trace


def _spec(alpha: float, tau: int, **extra: dict) -> Scenario:
    data: dict = {
        "workload": {"requests": 60, "output_tokens": 4000},
        "acceptance": {"model": "iid", "alpha": alpha},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.002},
        "policy": {"name": "fixed", "tau": tau},
    }
    for section, table in extra.items():
        data.setdefault(section, {}).update(table)
    return Scenario.from_dict(data)


@pytest.mark.parametrize(("alpha", "tau"), [(0.8, 4), (0.6, 2), (0.9, 8), (0.5, 1)])
def test_tokens_per_cycle_and_speedup_match_theory(alpha: float, tau: int) -> None:
    result = simulate(_spec(alpha, tau), seed=11)
    f = result.figures
    expected = (1 - alpha ** (tau + 1)) / (1 - alpha)
    assert f["tokens_per_cycle"] == pytest.approx(expected, rel=0.01)
    c = 0.002 / 0.02
    assert f["speedup_vs_target_only"] == pytest.approx(expected / (tau * c + 1), rel=0.02)
    assert f["acceptance_rate"] > 0
    validate_trace(result.trace)


def test_positional_tokens_per_cycle() -> None:
    alphas = [0.95, 0.85, 0.7, 0.5]
    s = _spec(0.5, 4, acceptance={"model": "positional", "alpha": alphas})
    surv = np.cumprod(alphas)
    assert simulate(s, seed=3).figures["tokens_per_cycle"] == pytest.approx(
        1 + surv.sum(), rel=0.01
    )


def test_batch_server_agrees_with_theory_too() -> None:
    # a dynamic-path run (max_batch > 1 with one request at a time behaves as a single stream)
    s = _spec(0.8, 4, workload={"requests": 20}, server={"max_batch": 2})
    f = simulate(s, seed=5).figures
    assert f["tokens_per_cycle"] == pytest.approx((1 - 0.8**5) / 0.2, rel=0.01)
    assert f["speedup_vs_target_only"] == pytest.approx(3.3616 / 1.4, rel=0.02)


def test_md1_waiting_time() -> None:
    # target-only, one output token each: deterministic service S = target_step_s
    service, rho = 0.02, 0.6
    s = Scenario.from_dict(
        {
            "workload": {
                "requests": 200_000,
                "output_tokens": 1,
                "arrival": "poisson",
                "rate_per_s": rho / service,
                "seed": 7,
            },
            "latency": {"target_step_s": service},
            "policy": {"name": "target_only"},
            "sim": {"baseline": False},
        }
    )
    f = simulate(s).figures
    wq = rho * service / (2 * (1 - rho))  # M/D/1
    assert f["queue_s"]["mean"] == pytest.approx(wq, rel=0.05)
    assert f["utilization"] == pytest.approx(rho, rel=0.02)
    assert not f["overloaded"]


def test_mg1_pollaczek_khinchine_with_speculation() -> None:
    # speculative service times are random; P-K: W = lambda E[S^2] / (2 (1 - rho))
    s = Scenario.from_dict(
        {
            "workload": {
                "requests": 40_000,
                "output_tokens": 8,
                "arrival": "poisson",
                "rate_per_s": 6.0,
                "seed": 9,
            },
            "acceptance": {"alpha": 0.6},
            "latency": {"target_step_s": 0.02, "draft_step_s": 0.002},
            "policy": {"name": "fixed", "tau": 3},
            "sim": {"baseline": False},
        }
    )
    r = simulate(s)
    req = r.trace.requests
    service = (req["end_s"] - req["start_s"]).to_numpy()
    lam = 6.0
    rho = lam * service.mean()
    assert 0.5 < rho < 0.9
    w = lam * float((service**2).mean()) / (2 * (1 - rho))
    assert r.figures["queue_s"]["mean"] == pytest.approx(w, rel=0.05)


def test_overloaded_scenario_finishes_with_a_warning() -> None:
    s = Scenario.from_dict(
        {
            "workload": {
                "requests": 500,
                "output_tokens": 20,
                "arrival": "poisson",
                "rate_per_s": 10.0,
            },
            "latency": {"target_step_s": 0.02},
            "policy": {"name": "target_only"},
        }
    )
    r = simulate(s)  # service 0.4 s per request, arrivals every 0.1 s
    assert r.figures["overloaded"] is True
    assert any("grows without bound" in w for w in r.warnings)
    assert r.figures["requests"] == 500
    light = simulate(s.with_overrides({"workload.rate_per_s": 1.0}))
    assert light.figures["overloaded"] is False
