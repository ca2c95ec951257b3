"""The servers: trace output, budgets, batching crossover, replay of measured traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim import Scenario, SimResult, scenario_from_trace, simulate
from sim.models.catalog import CATALOG_BAND, get_device
from tracing import read_trace, summarize, validate_trace, write_trace

SAMPLE = Path(__file__).resolve().parent / "data" / "sample_synthetic.jsonl"


def _base(**sections: dict) -> Scenario:
    data: dict = {
        "workload": {"requests": 200, "prompt_tokens": 64, "output_tokens": 64},
        "acceptance": {"alpha": 0.7},
        "latency": {"target_step_s": 0.02, "draft_step_s": 0.002, "prefill_s_per_token": 1e-4},
        "policy": {"name": "fixed", "tau": 4},
    }
    for section, table in sections.items():
        data.setdefault(section, {}).update(table)
    return Scenario.from_dict(data)


def _check_trace(result: SimResult) -> None:
    t = result.trace
    validate_trace(t)
    assert t.meta.source == "sim"
    assert t.meta.extra["scenario"]["policy"]["name"]
    r = t.requests
    assert (r["start_s"] >= r["arrival_s"] - 1e-12).all()
    assert (r["end_s"] >= r["first_token_s"]).all()
    sums = t.cycles.groupby("request_id")["emitted"].sum()
    assert (sums.reindex(r["request_id"], fill_value=0).to_numpy() == r["output_tokens"]).all()
    passes = t.cycles.groupby("request_id").size()
    assert (passes.reindex(r["request_id"], fill_value=0).to_numpy() == r["verify_passes"]).all()


@pytest.mark.parametrize(
    "policy",
    [
        {"name": "fixed", "tau": 4},
        {"name": "target_only"},
        {"name": "heuristic"},
        {"name": "adaptive"},
        {"name": "confidence", "threshold": 0.4, "max_tau": 8},
    ],
)
@pytest.mark.parametrize("max_batch", [1, 4])
def test_every_policy_makes_a_valid_trace(policy: dict, max_batch: int) -> None:
    s = _base(
        policy=policy,
        server={"max_batch": max_batch},
        workload={"arrival": "poisson", "rate_per_s": 5.0, "requests": 60},
    )
    result = simulate(s, seed=1)
    _check_trace(result)
    f = result.figures
    for key in (
        "requests",
        "latency_s",
        "ttft_s",
        "queue_s",
        "tokens_per_cycle",
        "verify_passes_per_request",
        "throughput_tok_s",
        "speedup_vs_target_only",
        "overloaded",
    ):
        assert key in f
    assert f["requests"] == 60
    if policy["name"] == "confidence":
        assert "draft_prob" in result.trace.cycles.columns


def test_same_seed_same_result_and_trace_round_trip(tmp_path: Path) -> None:
    s = _base(policy={"name": "adaptive"}, workload={"requests": 40})
    a, b = simulate(s, seed=3), simulate(s, seed=3)
    assert a.figures == b.figures
    c = simulate(s, seed=4)
    assert c.figures != a.figures
    path = tmp_path / "sim.parquet"
    write_trace(a.trace, str(path))
    back = read_trace(str(path))
    assert summarize(back)["latency_s"] == pytest.approx(a.figures["latency_s"])


@pytest.mark.parametrize(
    "budget", [{"max_verify_per_request": 12}, {"mean_verify_per_request": 15.0}]
)
@pytest.mark.parametrize("max_batch", [1, 8])
def test_budgets_are_never_exceeded(budget: dict, max_batch: int) -> None:
    s = _base(
        budget=budget,
        server={"max_batch": max_batch},
        workload={
            "output_tokens": {"dist": "uniform", "low": 8, "high": 120},
            "requests": 150,
            "concurrency": max_batch,
        },
        policy={"name": "adaptive"},
    )
    result = simulate(s, seed=2)
    _check_trace(result)
    passes = result.trace.requests["verify_passes"].to_numpy()
    if "max_verify_per_request" in budget:
        assert passes.max() <= 12
    else:
        assert passes.sum() <= 15.0 * passes.size
    f = result.figures
    assert f["truncated_requests"] > 0  # 120 tokens in 12 passes is not always possible
    assert any("verify budget" in w for w in result.warnings)


def test_budget_keeps_the_policys_tau_and_truncates() -> None:
    """Issue 26: a tight budget no longer raises tau (it made every policy the same long-draft
    one); it keeps the policy's tau and truncates the requests it cannot finish."""
    s = _base(acceptance={"alpha": 0.9}, policy={"name": "fixed", "tau": 1})
    loose = simulate(s, seed=5).figures
    tight = simulate(s.with_overrides({"budget.max_verify_per_request": 20}), seed=5).figures
    assert loose["verify_passes_per_request"] > 30
    assert tight["verify_passes_max"] <= 20
    assert tight["mean_tau"] == loose["mean_tau"] == 1.0
    assert tight["truncated_requests"] > 0 and loose["truncated_requests"] == 0


def test_batching_crossover() -> None:
    """Speculation pays at low load, not at high load: the verify pass over batch x (tau + 1)
    tokens turns compute-bound past the ridge."""
    s = _base(
        latency={"ridge_tokens": 32.0},
        server={"max_batch": 32},
        workload={"requests": 400, "output_tokens": 128},
    )
    low = simulate(s.with_overrides({"workload.concurrency": 1}), seed=0).figures
    high = simulate(s.with_overrides({"workload.concurrency": 32}), seed=0).figures
    assert low["speedup_vs_target_only"] > 1.5
    assert high["speedup_vs_target_only"] < 0.9


def test_catalog_hardware_whatif_ranks_devices_by_bandwidth() -> None:
    # a 7B model's weights dominate its pass: the faster memory wins
    s = _base(latency={"source_hardware": "L4"}, target={"model": "mistral-7b"})
    a100 = simulate(s.with_overrides({"latency.hardware": "A100"}), seed=0).figures
    h100 = simulate(s.with_overrides({"latency.hardware": "H100"}), seed=0).figures
    assert h100["latency_s"]["p50"] < a100["latency_s"]["p50"]
    assert (h100["basis"], h100["band"]) == ("catalog", CATALOG_BAND)
    h200 = simulate(s.with_overrides({"latency.hardware": "H200"}), seed=0).figures
    assert h200["band"] == get_device("H200").band < CATALOG_BAND  # checked on its profiles
    assert simulate(s, seed=0).figures["basis"] == "scenario"


def test_context_buckets_take_the_batch_path() -> None:
    measured = simulate(
        _base(workload={"prompt_tokens": {"dist": "uniform", "low": 10, "high": 4000}}), seed=0
    ).trace
    s = _base(
        acceptance={"model": "trace", "context_buckets": [1000, 3000]},
        workload={"requests": 50},
    )
    result = simulate(s, trace=measured, seed=0)
    _check_trace(result)
    assert len(result.figures["acceptance"]["hazards"]) == 3


def _replay_error(trace_path: str) -> tuple[float, float]:
    trace = read_trace(trace_path)
    measured = summarize(trace)["latency_s"]
    sim = simulate(scenario_from_trace(trace), trace=trace).figures["latency_s"]
    return sim["p50"] / measured["p50"] - 1, sim["p95"] / measured["p95"] - 1


def test_replay_of_the_sample_trace() -> None:
    e50, e95 = _replay_error(str(SAMPLE))
    assert abs(e50) < 0.05
    assert abs(e95) < 0.05


@pytest.mark.parametrize(
    "policy", [{"name": "fixed", "tau": 5}, {"name": "heuristic"}, {"name": "adaptive"}]
)
def test_replay_of_a_generated_trace(tmp_path: Path, policy: dict) -> None:
    s = _base(
        policy=policy,
        acceptance={"model": "positional", "alpha": [0.9, 0.8, 0.7, 0.6, 0.5]},
        latency={"verify_slope_s": 0.003, "overhead_s": 0.0005},
        workload={
            "requests": 150,
            "output_tokens": {"dist": "lognormal", "mean": 120, "sigma": 0.6},
            "prompt_tokens": {"dist": "uniform", "low": 16, "high": 512},
            "arrival": "poisson",
            "rate_per_s": 2.0,
        },
    )
    path = tmp_path / "generated.jsonl"
    write_trace(simulate(s, seed=8).trace, str(path))
    scenario = scenario_from_trace(read_trace(str(path)))
    assert scenario.workload.arrival == "trace"
    assert scenario.policy.name == policy["name"]
    e50, e95 = _replay_error(str(path))
    assert abs(e50) < 0.05
    assert abs(e95) < 0.05


def test_scenario_from_trace_round_trips_through_dict() -> None:
    trace = read_trace(str(SAMPLE))
    s = scenario_from_trace(trace)
    assert s.workload.arrival == "closed"
    assert Scenario.from_dict(s.to_dict()) == s
    # what-ifs on a trace: a longer draft, another device
    longer = simulate(s.with_overrides({"policy.tau": 8}), trace=trace)
    assert longer.figures["mean_tau"] > 4
    moved = simulate(s.with_overrides({"latency.hardware": "H100"}), trace=trace)
    assert moved.figures["basis"] == "catalog"  # the sample records its target's size
    assert moved.figures["latency_s"]["p50"] < summarize(trace)["latency_s"]["p50"]
    assert np.isfinite(moved.figures["speedup_vs_target_only"])


def test_scenario_from_trace_keeps_a_recorded_budget() -> None:
    s = _base(budget={"max_verify_per_request": 10}, workload={"requests": 30})
    trace = simulate(s, seed=0).trace
    assert trace.meta.policy_params["max_verify"] == 10
    again = scenario_from_trace(trace)
    assert again.budget.max_verify_per_request == 10
    assert again.policy.params == {"tau": 4}
    replay = simulate(again, trace=trace)
    assert replay.figures["verify_passes_max"] <= 10


def test_scenario_from_a_target_only_trace() -> None:
    trace = simulate(_base(policy={"name": "target_only"}, workload={"requests": 20})).trace
    s = scenario_from_trace(trace)
    assert s.acceptance.model == "iid" and s.acceptance.alpha == 0.0
    replay = simulate(s, trace=trace).figures
    measured = summarize(trace)["latency_s"]
    assert replay["latency_s"]["p50"] == pytest.approx(measured["p50"], rel=1e-6)


def test_the_three_servers_agree() -> None:
    """Fixed tau through the precomputed stream, the dynamic stream (a budget too large to
    bind forces it) and the batch server (one user) give the same statistics."""
    s = _base(workload={"requests": 400, "output_tokens": 200})
    static = simulate(s, seed=1).figures
    dynamic = simulate(s.with_overrides({"budget.max_verify_per_request": 10_000}), seed=2).figures
    batch = simulate(s.with_overrides({"server.max_batch": 4}), seed=3).figures
    for other in (dynamic, batch):
        assert other["tokens_per_cycle"] == pytest.approx(static["tokens_per_cycle"], rel=0.01)
        assert other["latency_s"]["mean"] == pytest.approx(static["latency_s"]["mean"], rel=0.01)
        assert other["ttft_s"]["mean"] == pytest.approx(static["ttft_s"]["mean"], rel=0.02)


@pytest.mark.parametrize(("alpha", "c"), [(0.3, 0.8), (0.5, 0.3), (0.7, 0.05), (0.9, 0.3)])
def test_adaptive_is_near_the_best_fixed_tau(alpha: float, c: float) -> None:
    s = _base(
        acceptance={"alpha": alpha},
        latency={"draft_step_s": 0.02 * c, "prefill_s_per_token": 0.0},
        workload={"requests": 150, "output_tokens": 256},
    )
    best = max(
        simulate(s.with_overrides({"policy.tau": t}), seed=0).figures["speedup_vs_target_only"]
        for t in range(9)
    )
    adaptive = simulate(s.with_overrides({"policy.name": "adaptive"}), seed=0).figures
    assert adaptive["speedup_vs_target_only"] >= 0.95 * best


@pytest.mark.parametrize("policy", [{"name": "fixed", "tau": 3}, {"name": "heuristic"}])
def test_replay_speed_reproduces_a_slow_spell(policy: dict) -> None:
    from sim.calibrate import calibrate
    from sim.calibrate.costs import request_speeds
    from tracing.trace import Trace

    # Requests far apart (no queueing); request 5 ran 1.5x slower (a neighbour's load).
    s = _base(policy=policy, workload={"requests": 12, "arrival": "poisson", "rate_per_s": 0.05})
    trace = simulate(s, seed=3).trace
    # cycle_s (schema v2) is re-derived from the doctored split
    cycles, requests = trace.cycles.drop(columns="cycle_s"), trace.requests.copy()
    slow = cycles["request_id"] == 5
    extra = 0.5 * float((cycles.loc[slow, "draft_s"] + cycles.loc[slow, "verify_s"]).sum()
                        + requests.loc[requests["request_id"] == 5, "prefill_s"].iloc[0])
    for col in ("draft_s", "verify_s"):
        cycles.loc[slow, col] *= 1.5
    row = requests["request_id"] == 5
    requests.loc[row, "prefill_s"] *= 1.5
    requests.loc[row, "end_s"] += extra
    assert requests["arrival_s"].iloc[6] > requests.loc[row, "end_s"].iloc[0]  # still no queue
    doctored = Trace(trace.meta, requests, cycles, "doctored")
    validate_trace(doctored)

    base = scenario_from_trace(doctored)
    speeds = request_speeds(doctored, calibrate(base, doctored).costs)
    # (the fitted costs absorb a little of it: request 5's cycles are in their means)
    assert speeds[5] / np.median(np.delete(speeds, 5)) == pytest.approx(1.5, rel=0.05)

    def latency_of_5(replay_speed: bool) -> float:
        sc = base.with_overrides({"latency.replay_speed": replay_speed})
        r = simulate(sc, doctored).trace.requests.set_index("request_id")
        return float(r.loc[5, "end_s"] - r.loc[5, "start_s"])

    measured = float(requests.loc[row, "end_s"].iloc[0] - requests.loc[row, "start_s"].iloc[0])
    assert latency_of_5(True) == pytest.approx(measured, rel=0.03)
    assert latency_of_5(False) < 0.8 * measured  # mean costs miss the spell
    # on another device the spell does not carry over
    other = base.with_overrides({"latency.replay_speed": True, "latency.hardware": "H100",
                                 "latency.target_params": 134515008})
    assert simulate(other, doctored).trace.requests["end_s"].notna().all()
