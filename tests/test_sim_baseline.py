"""The target-only baseline (sim.engine.baseline): the batch step loop gives exactly what the batch
server gives for a target_only run of the same workload, the single-stream closed form what the
stream server gives, and a sweep computes it once per workload."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import sim
import sim.engine.baseline
import sim.engine.workload
from sim import Scenario, simulate
from sim.sweep.whatif import sweep

LATENCY = {"target_step_s": 0.02, "draft_step_s": 0.002, "prefill_s_per_token": 2e-4,
           "overhead_s": 0.001, "context_s_per_token": 2e-6, "verify_slope_s": 0.0005}


def _scenario(**sections: dict[str, Any]) -> Scenario:
    d: dict[str, Any] = {
        "workload": {"requests": 150, "prompt_tokens": {"dist": "uniform", "low": 16, "high": 200},
                     "output_tokens": {"dist": "lognormal", "mean": 40, "sigma": 0.7},
                     "arrival": "poisson", "rate_per_s": 2.0, "seed": 3},
        "acceptance": {"alpha": 0.7},
        "latency": dict(LATENCY),
        "policy": {"name": "fixed", "tau": 3},
        "server": {"max_batch": 4},
    }
    for key, value in sections.items():
        d[key] = {**d.get(key, {}), **value}
    return Scenario.from_dict(d)


def _target_only(s: Scenario) -> Any:
    return simulate(s.with_overrides({"policy.name": "target_only", "sim.baseline": False}))


def _target_only_mean(s: Scenario) -> float:
    return float(_target_only(s).figures["latency_s"]["mean"])


@pytest.mark.parametrize("sections", [
    {},  # open, under the ridge, context cost
    {"workload": {"rate_per_s": 9.0}, "latency": {"ridge_tokens": 3}},  # overloaded, ridge
    {"workload": {"rate_per_s": 3.2}},  # near the overload line
    {"workload": {"arrival": "closed", "rate_per_s": 0.0, "concurrency": 6}},
    {"latency": {"context_s_per_token": 0.0}, "server": {"max_batch": 2}},
    {"latency": {"batch_verify_table_s": [[0.02, 0.022, 0.025], [0.026, 0.03, 0.034]]},
     "server": {"max_batch": 3}},  # a batched profile, extrapolated past batch 2
])
def test_batch_baseline_is_the_batch_server_run_target_only(sections: dict[str, Any]) -> None:
    s = _scenario(**sections)
    result = simulate(s)
    base = _target_only(s)
    if base.figures["overloaded"]:  # no speedup against a baseline whose queue grows forever
        assert result.figures["speedup_vs_target_only"] is None
        assert any("baseline is overloaded" in w for w in result.warnings)
    else:
        mean = float(result.figures["latency_s"]["mean"])
        want = float(base.figures["latency_s"]["mean"]) / mean
        assert result.figures["speedup_vs_target_only"] == want


def test_batch_baseline_backlog_is_the_servers() -> None:
    from sim.engine.core import run

    s = _scenario(workload={"rate_per_s": 9.0})
    base = _target_only(s)
    said = next(w for w in base.warnings if w.startswith("overloaded:"))
    cal = sim.calibrate(s)
    workload = sim.engine.workload.build_workload(s, np.random.default_rng(s.workload.seed))
    _, backlog = sim.engine.baseline.batch_target_only_latencies(
        workload, cal.costs.for_target_only(), s.server.max_batch)
    assert said.startswith(f"overloaded: {backlog} requests were still waiting")
    assert run(cal).figures["speedup_vs_target_only"] is None


def test_single_stream_baseline_is_the_stream_server_run_target_only() -> None:
    s = _scenario(server={"max_batch": 1}, workload={"rate_per_s": 0.4})
    f = simulate(s).figures
    # the closed form adds each request's passes in another order: equal to rounding
    expected = _target_only_mean(s) / f["latency_s"]["mean"]
    assert f["speedup_vs_target_only"] == pytest.approx(expected, rel=1e-9)


def test_sweep_computes_the_baseline_once_per_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = sim.engine.baseline.batch_target_only_latencies

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sim.engine.baseline, "batch_target_only_latencies", counted)
    sim.engine.baseline._cache.clear()
    s = _scenario()
    result = sweep(s, {"policy.tau": [1, 2, 3], "acceptance.alpha": [0.5, 0.8],
                       "latency.draft_step_s": [0.001, 0.003]}, jobs=1)
    assert len(result.points) == 12
    assert len(calls) == 1  # policy, acceptance and draft cost leave the baseline as it is
    assert len({p["speedup_vs_target_only"] for p in result.points}) > 1
    sweep(s, {"latency.target_step_s": [0.02, 0.03]}, jobs=1)
    assert len(calls) == 2  # the target's cost moves it: 0.02 was cached, 0.03 is new
