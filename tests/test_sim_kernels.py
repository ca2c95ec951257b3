"""The compiled single-stream loops (sim/engine/kernels.py) are the Python policy loop, bit for bit."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sim.engine.kernels as kernels
from sim import Scenario, simulate
from sim.models.acceptance import Depths
from sim.policies.library import Adaptive, Heuristic, make_policy

LATENCY = {"target_step_s": 0.02, "draft_step_s": 0.002, "prefill_s_per_token": 1e-4,
           "overhead_s": 0.0005, "context_s_per_token": 1e-6, "verify_slope_s": 0.001}


def _scenario(policy: dict[str, Any], requests: int = 150, **latency: Any) -> Scenario:
    return Scenario.from_dict({
        "workload": {"requests": requests, "prompt_tokens": {"dist": "uniform", "low": 16,
                                                              "high": 300},
                     "output_tokens": {"dist": "lognormal", "mean": 80, "sigma": 0.8},
                     "arrival": "poisson", "rate_per_s": 0.5, "seed": 11},
        "acceptance": {"alpha": 0.7},
        "latency": {**LATENCY, **latency},
        "policy": policy,
    })


def _both(sc: Scenario, monkeypatch: pytest.MonkeyPatch, seed: int = 5
          ) -> tuple[Any, Any]:
    """(compiled run, Python run) of one scenario."""
    monkeypatch.setattr(kernels, "ENABLED", True)
    fast = simulate(sc, seed=seed)
    monkeypatch.setattr(kernels, "ENABLED", False)
    slow = simulate(sc, seed=seed)
    return fast, slow


def _assert_same(fast: Any, slow: Any) -> None:
    pd.testing.assert_frame_equal(fast.trace.cycles, slow.trace.cycles, check_exact=True)
    pd.testing.assert_frame_equal(fast.trace.requests, slow.trace.requests, check_exact=True)
    assert json.dumps(fast.figures, sort_keys=True) == json.dumps(slow.figures, sort_keys=True)


CASES = {
    "heuristic": {"name": "heuristic"},
    "heuristic, small cap": {"name": "heuristic", "tau": 2, "max_tau": 6},
    "adaptive": {"name": "adaptive"},
    "adaptive, deep probes": {"name": "adaptive", "max_tau": 12, "tau": 6, "probe_every": 3},
    "adaptive, no forgetting": {"name": "adaptive", "decay": 1.0},
    "adaptive, renormalising": {"name": "adaptive", "decay": 0.5},  # unit passes 1e100
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_run_equals_python_run(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = _scenario(CASES[name])
    fast, slow = _both(sc, monkeypatch)
    assert len(fast.trace.cycles) > 1000
    assert fast.trace.cycles["tau"].nunique() > 2  # the policy did move
    _assert_same(fast, slow)


def test_kernel_with_speed_noise_and_flat_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-request speeds (the scaled branch) and no context term."""
    sc = _scenario({"name": "adaptive"}, speed_cv=0.2, context_s_per_token=0.0)
    fast, slow = _both(sc, monkeypatch)
    assert fast.trace.cycles["verify_s"].nunique() > 50  # speeds did scale the costs
    _assert_same(fast, slow)


def test_kernel_across_depth_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """More cycles than one block of depths: the kernel hands back for a refill mid-request."""
    sc = _scenario({"name": "heuristic", "tau": 1, "max_tau": 2}, requests=1800)
    fast, slow = _both(sc, monkeypatch)
    assert len(fast.trace.cycles) > 65536
    _assert_same(fast, slow)


def test_policy_state_written_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a request the policy object holds what the Python loop would have left in it."""
    from sim.engine.stream import TAU_TABLE

    policy = make_policy("adaptive")
    assert isinstance(policy, Adaptive)
    sc = _scenario({"name": "adaptive"}, requests=3)
    rng = np.random.default_rng(0)
    from sim.calibrate import calibrate

    model = calibrate(sc, None).acceptance
    cols: dict[str, list[Any]] = {k: [] for k in ("tau", "accepted", "emitted",
                                                  "context_tokens", "start_s", "draft_s",
                                                  "verify_s")}
    vt = [0.02 + 0.001 * t for t in range(TAU_TABLE)]
    kernel = kernels.stream_kernel(policy, True, vt, 0.002, 0.0005, 0.0,
                                   Depths(model, rng), cols)
    assert kernel is not None
    out, cycles, _ = kernel.request(200, 50, 0.0, 1.0)
    assert out == 200 and cycles == len(cols["tau"][-1]) > 10
    twin = make_policy("adaptive")  # the same cycles told to a fresh Python policy
    from tracing.schema import CycleRecord

    for i in range(cycles):
        tau, acc = int(cols["tau"][-1][i]), int(cols["accepted"][-1][i])
        twin.observe(CycleRecord(0, i, float(cols["start_s"][-1][i]), tau, acc, acc + 1,
                                 float(cols["draft_s"][-1][i]), float(cols["verify_s"][-1][i]),
                                 0.0005, int(cols["context_tokens"][-1][i])))
    assert isinstance(twin, Adaptive)
    assert policy.hazard.reached == twin.hazard.reached
    assert policy.hazard.accepted == twin.hazard.accepted
    assert policy.costs._cost_at == twin.costs._cost_at
    assert policy.costs.draft_per_token == twin.costs.draft_per_token
    assert policy.costs.line() == twin.costs.line()


@pytest.mark.parametrize("spec, compiled", [
    ("heuristic", True),
    ("adaptive", True),
    ("adaptive:budget=30", False),          # budgets stay in Python
    ("adaptive:max_verify=20", False),      # wrapped in BudgetedPolicy
    ("heuristic:max_tau=80", False),        # deeper than the verify table
    ("fixed:tau_by_batch=1:4,4:2", False),
    ("confidence", False),
])
def test_which_policies_compile(spec: str, compiled: bool) -> None:
    policy = make_policy(spec)
    cols: dict[str, list[Any]] = {}
    from sim.engine.stream import TAU_TABLE

    vt = [0.02] * TAU_TABLE
    depths = Depths.__new__(Depths)
    got = kernels.stream_kernel(policy, True, vt, 0.002, 0.0, 0.0, depths, cols)
    assert (got is not None) == compiled
    if compiled:
        assert isinstance(policy, Heuristic | Adaptive)
        assert kernels.stream_kernel(policy, False, vt, 0.002, 0.0, 0.0, depths, cols) is None
