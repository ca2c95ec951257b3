"""Exact figures of one scenario per server path, pinned before the simulator was made fast.

The pinned values in tests/data/sim_pinned.json were written by this file's ``main`` at commit
6c8ad91 (before the calibration refactor and the speed work): the refactor and every speed-up
since must reproduce each scenario's figures and its whole simulated trace. "Exact" is to the
last bits the CPU decides: the same code gives figures ~1e-15 apart on Intel and AMD machines (the
fitted costs' floating-point sums), so figures are compared to 1e-9 relative and the trace digest
hashes float columns as float32 (integers and strings exactly).
Regenerate only for a change that is *meant* to move figures, and say so in the commit:

    python -m tests.test_sim_pinned
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim import Scenario, scenario_from_trace, simulate
from sim.engine.core import SimResult
from tracing.trace import Trace

PINNED = Path(__file__).parent / "data" / "sim_pinned.json"

LATENCY = {"target_step_s": 0.02, "draft_step_s": 0.002, "prefill_s_per_token": 1e-4,
           "overhead_s": 0.0005, "context_s_per_token": 1e-6, "verify_slope_s": 0.001}
OPEN = {"requests": 120, "prompt_tokens": {"dist": "uniform", "low": 32, "high": 256},
        "output_tokens": {"dist": "lognormal", "mean": 96, "sigma": 0.6}, "arrival": "poisson",
        "rate_per_s": 0.8, "seed": 7}


def _scenario(policy: dict[str, Any], **sections: dict[str, Any]) -> Scenario:
    d: dict[str, Any] = {"workload": dict(OPEN), "acceptance": {"alpha": 0.75},
                         "latency": dict(LATENCY), "policy": policy}
    for key, value in sections.items():
        d[key] = {**d.get(key, {}), **value}
    return Scenario.from_dict(d)


def _measured() -> Trace:
    """A 'measured' trace: a heuristic single-stream run with speed noise and n-gram gaps."""
    s = _scenario({"name": "heuristic"}, latency={"speed_cv": 0.08},
                  draft={"no_proposal_prob": 0.1, "proposal_caps": [0.1, 0.1]},
                  workload={"requests": 60})
    return simulate(s, seed=3).trace


def _measured_fixed() -> Trace:
    return simulate(_scenario({"name": "fixed", "tau": 3}, workload={"requests": 60}), seed=4).trace


def cases() -> dict[str, tuple[Scenario, Trace | None]]:
    """The pinned scenarios by name (with the trace each replays, if any)."""
    heur = _measured()
    fixed = _measured_fixed()
    replay = scenario_from_trace(heur)
    per_request = scenario_from_trace(fixed).with_overrides(
        {"acceptance.replay": False, "policy.tau": 5})
    return {
        # single stream, static policy (the precomputed plan)
        "static_fixed": (_scenario({"name": "fixed", "tau": 4}, latency={"speed_cv": 0.1}), None),
        "static_target_only": (_scenario({"name": "target_only"}), None),
        "static_closed": (_scenario({"name": "fixed", "tau": 6}, workload={
            "arrival": "closed", "rate_per_s": 0.0, "concurrency": 3}), None),
        "static_per_request": (per_request, fixed),
        "static_replay_speed": (per_request.with_overrides({"latency.replay_speed": True}), fixed),
        # single stream, dynamic policies
        "dynamic_heuristic": (_scenario({"name": "heuristic"}), None),
        "dynamic_adaptive": (_scenario({"name": "adaptive"}), None),
        "dynamic_adaptive_budget": (_scenario({"name": "adaptive", "budget": 30}), None),
        "dynamic_confidence": (_scenario({"name": "confidence"}), None),
        "dynamic_fixed_budget": (_scenario({"name": "fixed", "tau": 2},
                                           budget={"max_verify_per_request": 40}), None),
        "dynamic_mean_budget": (_scenario({"name": "heuristic"},
                                          budget={"mean_verify_per_request": 30.0}), None),
        "dynamic_buckets": (_scenario({"name": "fixed", "tau": 4}, acceptance={
            "model": "positional", "alpha": [0.9, 0.8, 0.7, 0.6]}, draft={
            "no_proposal_prob": 0.2}), None),
        "dynamic_replay": (replay, heur),
        "dynamic_replay_other": (replay.with_overrides({"policy.name": "adaptive",
                                                         "policy.max_tau": 6}), heur),
        # continuous batching
        "batch_fixed": (_scenario({"name": "fixed", "tau": 4}, server={"max_batch": 4},
                                  workload={"rate_per_s": 3.0}, latency={"ridge_tokens": 12}),
                        None),
        "batch_heuristic": (_scenario({"name": "heuristic"}, server={"max_batch": 8},
                                      workload={"rate_per_s": 4.0}), None),
        "batch_budget": (_scenario({"name": "adaptive"}, server={"max_batch": 3},
                                   budget={"max_verify_per_request": 35},
                                   workload={"rate_per_s": 2.0}), None),
        "batch_replay": (replay.with_overrides({"server.max_batch": 4}), heur),
    }


def _digest(result: SimResult) -> str:
    """sha256 of every column of the simulated trace, in schema order."""
    h = hashlib.sha256()
    for frame in (result.trace.requests, result.trace.cycles):
        for name in frame.columns:
            if name == "cycle_s":  # schema v2: filled from draft_s + verify_s + overhead_s
                continue
            h.update(name.encode())
            col = frame[name]
            if col.dtype.kind == "f":  # float32: the CPU's last-bit differences do not reach it
                h.update(np.ascontiguousarray(col.to_numpy().astype(np.float32)).tobytes())
            elif col.dtype.kind in "iub":
                h.update(np.ascontiguousarray(col.to_numpy()).tobytes())
            else:
                h.update(repr(col.tolist()).encode())
    return h.hexdigest()


def summary(result: SimResult) -> dict[str, Any]:
    """What is pinned: the figures (JSON round trip) and the trace digest."""
    figures = json.loads(json.dumps(result.figures))
    return {"figures": figures, "warnings": list(result.warnings), "trace": _digest(result)}


def same(got: Any, want: Any, where: str = "figures") -> None:
    """Assert two JSON values equal, floats to 1e-9 relative (NaN equals NaN)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for key in want:
            same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, nan_ok=True), where
    else:
        assert got == want, where


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    return json.loads(PINNED.read_text())


@pytest.fixture(scope="module")
def scenarios() -> dict[str, tuple[Scenario, Trace | None]]:
    return cases()


@pytest.mark.parametrize("name", list(json.loads(PINNED.read_text())) if PINNED.exists() else [])
def test_figures_pinned(
    name: str, pinned: dict[str, Any], scenarios: dict[str, tuple[Scenario, Trace | None]]
) -> None:
    scenario, trace = scenarios[name]
    got = summary(simulate(scenario, trace, seed=11))
    want = pinned[name]
    same(got["figures"], want["figures"])
    assert got["warnings"] == want["warnings"]
    assert got["trace"] == want["trace"]


def test_every_case_is_pinned(pinned: dict[str, Any]) -> None:
    assert set(pinned) == set(cases())


def main() -> None:
    out = {name: summary(simulate(sc, tr, seed=11)) for name, (sc, tr) in cases().items()}
    PINNED.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINNED} ({len(out)} scenarios)")


if __name__ == "__main__":
    main()
