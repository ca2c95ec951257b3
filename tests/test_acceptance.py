"""Acceptance models: censoring-aware fits from traces, sampling matching the model."""

from __future__ import annotations

import numpy as np
import pytest

from sim import Scenario, simulate
from sim.calibrate.acceptance import build_acceptance, fit_acceptance
from sim.models.acceptance import MAX_POSITIONS, MIN_REACHED, censored_hazards
from tracing.errors import SpecsimError
from tracing.schema import CycleRecord, RequestRecord, RunMeta
from tracing.trace import Trace


def _trace(plan: list[tuple[int, int]], context: int = 100) -> Trace:
    """One request per (tau, accepted) cycle, all at the given context length."""
    cycles = [
        CycleRecord(i, 0, 0.0, tau, acc, acc + 1, 0.0, 0.01, 0.0, context)
        for i, (tau, acc) in enumerate(plan)
    ]
    requests = [
        RequestRecord(i, 0.0, 0.0, 0.01, 0.01, 10, acc + 1, 0.0, 1)
        for i, (_, acc) in enumerate(plan)
    ]
    return Trace.from_records(RunMeta("sim", "t", "d"), requests, cycles)


def test_censored_hazards_ignore_unreached_positions() -> None:
    # tau=2 all accepted says nothing about position 3; tau=4 rejected at 3.
    tau = np.array([2, 2, 4, 4, 0])
    acc = np.array([2, 2, 2, 4, 0])
    hz, reached = censored_hazards(tau, acc)
    assert reached.tolist() == [4, 4, 2, 1]
    assert hz.tolist() == [1.0, 1.0, 0.5, 1.0]


def test_fit_recovers_positional_hazards_and_extrapolates() -> None:
    rng = np.random.default_rng(0)
    true = [0.9, 0.7, 0.5]
    plan = []
    for _ in range(4000):
        acc = 0
        while acc < 3 and rng.random() < true[acc]:
            acc += 1
        plan.append((3, acc))
    model = fit_acceptance(_trace(plan))
    hz = model.fits[0].hazards
    assert hz[:3] == pytest.approx(true, abs=0.03)
    # beyond the longest drafted position: the last estimated hazard, flagged
    assert hz[3] == hz[2]
    assert model.extrapolated_from() == 4
    assert len(hz) == MAX_POSITIONS


def test_fit_needs_enough_cycles() -> None:
    with pytest.raises(SpecsimError, match="too few speculative cycles"):
        fit_acceptance(_trace([(4, 1)] * (MIN_REACHED - 1)))


def test_context_buckets_fit_separately() -> None:
    short = _trace([(4, 4)] * 50 + [(4, 3)] * 50, context=100)
    long = _trace([(4, 0)] * 100, context=5000)
    both = Trace(
        short.meta,
        short.requests,
        __import__("pandas").concat([short.cycles, long.cycles], ignore_index=True),
    )
    model = fit_acceptance(both, edges=[1000])
    assert model.bucket(10) == 0 and model.bucket(4000) == 1
    assert model.expected_tokens(4, 0) > 4.0
    assert model.expected_tokens(4, 1) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "acceptance",
    [{"model": "iid", "alpha": 0.7}, {"model": "positional", "alpha": [0.95, 0.8, 0.6, 0.3]}],
)
def test_sampled_depths_match_survival(acceptance: dict) -> None:
    s = Scenario.from_dict({"acceptance": acceptance})
    model = build_acceptance(s)
    depths = model.draw_depths(np.random.default_rng(1), 200_000)[0]
    surv = model.survival(0)
    for k in range(1, 6):
        assert np.mean(depths >= k) == pytest.approx(surv[k - 1], abs=0.005)


def test_draft_section_overrides_acceptance() -> None:
    s = Scenario.from_dict({"acceptance": {"alpha": 0.8}, "draft": {"alpha": 0.5}})
    assert build_acceptance(s).survival(0)[1] == pytest.approx(0.25)
    s = Scenario.from_dict({"acceptance": {"alpha": 0.8}, "draft": {"acceptance_scale": 0.5}})
    assert build_acceptance(s).survival(0)[0] == pytest.approx(0.4)


def test_trace_model_round_trip_through_simulation() -> None:
    s = Scenario.from_dict(
        {
            "workload": {"requests": 300, "output_tokens": 128},
            "acceptance": {"model": "positional", "alpha": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]},
            "policy": {"name": "fixed", "tau": 6},
        }
    )
    measured = simulate(s).trace
    model = fit_acceptance(measured)
    assert model.fits[0].hazards[:6] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], abs=0.04)
