"""The target-only baseline behind ``speedup_vs_target_only``: null when it is itself overloaded,
the same prefill charge as a target-only run, one device's profile shared by its traces."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sim import Scenario, scenario_from_trace, simulate
from tracing import write_trace
from tracing.trace import Trace

H100 = "NVIDIA H100 80GB HBM3"


def _scenario(**sections: dict[str, Any]) -> Scenario:
    d: dict[str, Any] = {
        "workload": {"requests": 80, "prompt_tokens": {"dist": "uniform", "low": 20, "high": 200},
                     "output_tokens": {"dist": "uniform", "low": 20, "high": 90}, "seed": 3},
        "acceptance": {"alpha": 0.6},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.004, "prefill_s_per_token": 2e-4,
                    "overhead_s": 3e-4, "context_s_per_token": 1e-6,
                    "target_params": 1.3e8, "draft_params": 5.6e7},
        "policy": {"name": "fixed", "tau": 3},
    }
    for key, value in sections.items():
        d[key] = {**d.get(key, {}), **value}
    return Scenario.from_dict(d)


def test_an_overloaded_baseline_gives_no_speedup_and_says_why() -> None:
    # ~1.4 s of target-only work per request arriving every 0.7 s: its queue never drains,
    # while speculation (3x faster) keeps up
    s = _scenario(workload={"arrival": "poisson", "rate_per_s": 1.4, "requests": 300})
    result = simulate(s)
    assert not result.figures["overloaded"]
    assert result.figures["speedup_vs_target_only"] is None
    assert any("baseline is overloaded" in w for w in result.warnings)
    calm = simulate(s.with_overrides({"workload.rate_per_s": 0.2}))
    assert calm.figures["speedup_vs_target_only"] > 1.0
    batch = simulate(s.with_overrides({"server.max_batch": 2, "workload.rate_per_s": 4.0}))
    assert batch.figures["speedup_vs_target_only"] is None


@pytest.mark.parametrize("batch", [1, 3])
def test_target_only_scored_against_itself_is_exactly_one(batch: int) -> None:
    # the prefill measured with a draft in the loop also filled the draft's cache; a
    # target-only run and the target-only baseline both pay only the target's share of it
    s = _scenario(policy={"name": "target_only"}, server={"max_batch": batch},
                  workload={"arrival": "closed", "concurrency": batch})
    speedup = simulate(s).figures["speedup_vs_target_only"]
    assert f"{speedup:.3f}" == "1.000"
    assert speedup == pytest.approx(1.0, abs=1e-12)


def _as_h100_capture(trace: Trace, name: str) -> Trace:
    meta = dataclasses.replace(trace.meta, source="live", device=H100, dtype="bfloat16",
                               target_model="smollm2", draft_model="ngram",
                               extra={"target_n_params": 134515008, "draft_n_params": 0})
    return Trace(meta, trace.requests, trace.cycles, name)


def test_two_traces_of_one_device_share_its_profiled_baseline(tmp_path: Path) -> None:
    # two runs of one workload on one H100, the second during a slow spell (every pass 40%
    # dearer); a target-only run of that device is the profile
    runs = [_as_h100_capture(simulate(_scenario(latency={"target_step_s": step}),
                                      seed=1).trace, f"run{i}")
            for i, step in enumerate((0.020, 0.028))]
    target_only = simulate(_scenario(policy={"name": "target_only"}), seed=1).trace
    profile = tmp_path / "h100_target_only.jsonl"
    write_trace(_as_h100_capture(target_only, "to"), str(profile))

    def baseline(trace: Trace, with_profile: bool) -> tuple[float, str]:
        s = scenario_from_trace(trace)
        if with_profile:
            s = s.with_overrides({"latency.profile": str(profile)})
        f = simulate(s, trace).figures
        return f["speedup_vs_target_only"] * f["latency_s"]["mean"], f["baseline_basis"]

    (a, basis_a), (b, basis_b) = (baseline(t, False) for t in runs)
    assert (basis_a, basis_b) == ("trace", "trace") and b > 1.2 * a  # each its own estimate
    (a, basis_a), (b, basis_b) = (baseline(t, True) for t in runs)
    assert (basis_a, basis_b) == ("profile", "profile")
    assert b == pytest.approx(a, rel=0.02)  # one device, one baseline
