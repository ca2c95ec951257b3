"""sim.sweep.decide: the one decision rule (conditions, SLO verdicts, incumbent, ties)."""

from __future__ import annotations

import pytest

from sim.sweep.decide import (
    Option,
    decide,
    group_by_condition,
    is_condition,
    slo_verdict,
    split_keys,
)
from tracing.errors import SpecsimError


def _opt(p95: float, draws: list[float] | None = None, **kw: object) -> Option:
    est = {"p50_s": p95 / 2, "p95_s": p95, "throughput_tok_s": 100.0 / p95}
    d = None if draws is None else [{"p50_s": x / 2, "p95_s": x, "throughput_tok_s": 100.0 / x}
                                    for x in draws]
    return Option(label={}, estimate=est, draws=d, **kw)  # type: ignore[arg-type]


def test_keys_split_into_decisions_and_conditions() -> None:
    assert is_condition("workload.concurrency") and not is_condition("policy.tau")
    dec, cond = split_keys({"policy.tau": 2, "workload.rate_per_s": 3.0, "draft.step_s": 0.1})
    assert dec == {"policy.tau": 2, "draft.step_s": 0.1} and cond == {"workload.rate_per_s": 3.0}
    groups = group_by_condition([{"policy.tau": t, "workload.concurrency": c}
                                 for c in (1, 4) for t in (2, 4)])
    assert groups == [({"workload.concurrency": 1}, [0, 1]), ({"workload.concurrency": 4}, [2, 3])]


def test_slo_verdicts_from_the_p95_interval() -> None:
    assert slo_verdict(0.9, [0.8, 0.95], 1000) == "yes"
    assert slo_verdict(0.9, [0.8, 1.2], 1000) == "within_noise"
    assert slo_verdict(1.1, [1.05, 1.2], 1000) == "no"
    assert slo_verdict(1.1, None, 1000) == "no" and slo_verdict(1.1, None, None) == "yes"


def test_within_noise_is_chosen_only_when_nothing_surely_meets() -> None:
    sure = _opt(0.95, p95_ci=[0.9, 0.99])
    maybe = _opt(0.5, p95_ci=[0.3, 1.3])  # a far lower estimate, but it may miss the SLO
    d = decide([maybe, sure], slo_p95_ms=1000)
    assert d.best == 1 and d.verdicts == ["within_noise", "yes"] and d.tier == "yes"
    d = decide([maybe], slo_p95_ms=1000)
    assert d.best == 0 and d.tier == "within_noise" and "within the noise" in d.reason


def test_a_change_must_surely_help_to_replace_the_incumbent() -> None:
    base = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]
    incumbent = _opt(1.0, base)
    noisy = _opt(0.97, [x * f for x, f in zip(base, (0.8, 1.2, 0.9, 1.1, 1.0, 0.85),
                                                 strict=True)])
    sure = _opt(0.8, [x * 0.8 for x in base])
    d = decide([incumbent, noisy], incumbent=0)
    assert d.best == 0 and d.kept_incumbent and 1 in d.tied
    d = decide([incumbent, noisy, sure], incumbent=0)
    assert d.best == 2 and not d.kept_incumbent
    # without an incumbent the lowest estimate leads, and the noisy one is tied with it
    d = decide([incumbent, noisy])
    assert d.best == 1 and d.tied == [0] and "no clear best" in d.reason


def test_objectives_and_eligibility() -> None:
    a, b = _opt(1.0), _opt(2.0)
    assert decide([a, b], objective="throughput").best == 0
    b.eligible = False
    assert decide([b]).best is None
    with pytest.raises(SpecsimError, match="goodput"):
        decide([a], objective="goodput")
    with pytest.raises(SpecsimError, match="objective"):
        decide([a], objective="speed")
