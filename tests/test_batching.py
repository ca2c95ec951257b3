"""Batched step costs from a server's profile, and load keys of a what-if."""

from __future__ import annotations

import math

import pytest

from sim import Scenario
from sim.calibrate.batching import BATCH_PROFILE_KEY, batch_profile_of, scaled_table
from sim.calibrate.costs import fit_latency
from sim.models.batching import pass_s
from sim.models.latency import CostModel
from tracing import CycleRecord, RequestRecord, RunMeta, Trace
from tracing.errors import SpecsimError

# seconds of a pass over b rows scoring n tokens each: a CPU, growing with rows x tokens
TABLE = [[0.010 + 0.002 * b * n for n in range(1, 6)] for b in range(1, 5)]


def _costs(**kw: object) -> CostModel:
    base: dict = dict(target_step_s=0.02, verify_slope_s=0.0, draft_step_s=0.001,
                      prefill_s_per_token=0.0, overhead_s=0.0005, context_s_per_token=0.0,
                      ridge_tokens=math.inf)
    base.update(kw)
    return CostModel(**base)


def test_batch_step_is_a_padded_pass_from_the_table() -> None:
    costs = _costs(batch_table=tuple(tuple(r) for r in TABLE))
    draft, verify = costs.batch_step([4, 1, 0])
    assert verify == pytest.approx(TABLE[2][4])  # 3 rows, every one scores max(tau) + 1 = 5
    # draft passes: 2 rows draft in pass 0, 1 row in passes 1-3; each pass grows like the
    # target's one-token pass over that many rows
    grow = [TABLE[b - 1][0] / TABLE[0][0] for b in (2, 1, 1, 1)]
    assert draft == pytest.approx(0.001 * sum(grow))
    assert costs.step_s(2, 3) == pytest.approx(
        TABLE[1][3] + 3 * 0.001 * TABLE[1][0] / TABLE[0][0] + 0.0005)
    # beyond the table: in proportion to rows x tokens from the last cell
    assert pass_s(TABLE, 8, 5) == pytest.approx(TABLE[3][4] * 2)
    assert pass_s(TABLE, 4, 10) == pytest.approx(TABLE[3][4] * 2)
    # without a table: flat (ridge at infinity), the old line
    assert _costs().batch_step([4, 1, 0]) == (4 * 0.001, 0.02)


def _server_trace(scale: float, profile: object = None) -> Trace:
    """A batch-1 server trace whose verify passes cost ``scale`` times the profile's."""
    extra = {BATCH_PROFILE_KEY: {"seconds": TABLE} if profile is None else profile,
             "max_batch": 4}
    meta = RunMeta(source="live", target_model="t", draft_model="ngram", policy="fixed",
                   policy_params={"tau": 3}, extra=extra)
    cycles, requests, now = [], [], 0.0
    for rid in range(3):
        start = now
        for k in range(4):
            verify = scale * TABLE[0][3]
            cycles.append(CycleRecord(rid, k, now, 3, 1, 2, 0.003, verify, 0.0, 20 + 2 * k))
            now += 0.003 + verify
        requests.append(RequestRecord(rid, start, start, start + 0.01, now, 20, 8, 0.0, 4))
    return Trace.from_records(meta, requests, cycles)


def test_profile_is_scaled_to_the_traces_measured_passes() -> None:
    trace = _server_trace(1.5)
    assert batch_profile_of(trace) == TABLE
    scaled = scaled_table(trace, TABLE)
    assert scaled[2][1] == pytest.approx(1.5 * TABLE[2][1])
    lat = fit_latency(trace)
    for got, want in zip(lat.batch_verify_table_s, scaled, strict=True):
        assert got == pytest.approx(want)


@pytest.mark.parametrize("bad", [{"seconds": []}, {"seconds": [[0.1], [0.1, 0.2]]},
                                 {"seconds": [[0.1, -1.0]]}, {"seconds": [["x"]]}, "nope"])
def test_malformed_profile_is_an_error_naming_the_key(bad: object) -> None:
    with pytest.raises(SpecsimError, match=BATCH_PROFILE_KEY):
        batch_profile_of(_server_trace(1.0, bad))


def test_varying_load_keys_switches_the_arrival_process() -> None:
    base = Scenario.from_dict({"workload": {"arrival": "poisson", "rate_per_s": 2.0}})
    closed = base.with_overrides({"workload.concurrency": "4"})
    assert (closed.workload.arrival, closed.workload.concurrency) == ("closed", 4)
    assert closed.workload.rate_per_s == 0.0
    open_ = Scenario().with_overrides({"workload.rate_per_s": "3.5"})
    assert (open_.workload.arrival, open_.workload.rate_per_s) == ("poisson", 3.5)
