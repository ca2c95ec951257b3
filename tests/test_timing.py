"""Timing health: a warm-up, drift, spread and stalls are found; a steady run gets nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.diagnose import diagnose
from analysis.planted import planted_trace
from analysis.timing import assess, unstable_for, warmup_count
from sim import Scenario, simulate
from tracing.io import read_trace

ROOT = Path(__file__).resolve().parents[1]


def test_warmup_count_is_a_quarter_from_1_to_8() -> None:
    assert [warmup_count(n) for n in (4, 7, 16, 100)] == [1, 1, 4, 8]


def test_a_run_whose_first_requests_are_slower_gets_unstable_timing() -> None:
    trace = planted_trace("unstable_timing", requests=60)
    findings = diagnose(trace, whatif=False)
    f = next(f for f in findings if f.kind == "unstable_timing")
    assert f.level == "high"
    assert f.evidence["warmup_ratio"] > 2.0 and "warmup" in f.evidence["problems"]
    assert "drop the first" in f.recommendation and "re-capture" in f.recommendation
    # The same run without its warm-up is steady.
    assert not assess(planted_trace("healthy", requests=60))["problems"]


def test_the_bundled_gpu_capture_is_unstable() -> None:
    trace = read_trace(str(ROOT / "traces" / "live_gpu_edit_ngram.jsonl"))
    f = next(f for f in diagnose(trace, whatif=False) if f.kind == "unstable_timing")
    assert {"warmup", "stalls"} <= set(f.evidence["problems"])
    assert f.evidence["first_request_ratio"] > 2


@pytest.mark.parametrize("path", ["tests/data/sample_synthetic.jsonl",
                                  "traces/live_edit_ngram.jsonl"])
def test_steady_runs_get_no_timing_finding(path: str) -> None:
    trace = read_trace(str(ROOT / path))
    assert "unstable_timing" not in [f.kind for f in diagnose(trace, whatif=False)]
    assert not unstable_for(assess(trace), 0.05)


def test_a_clean_simulated_trace_is_steady() -> None:
    scenario = Scenario.from_dict({"workload": {"requests": 40, "output_tokens": 64},
                                   "acceptance": {"model": "iid", "alpha": 0.7}})
    assert not assess(simulate(scenario, seed=1).trace)["problems"]


def test_stalls_are_found() -> None:
    trace = planted_trace("healthy", requests=40)
    c = trace.cycles
    stalled = c.index[::15]
    c.loc[stalled, "verify_s"] = c.loc[stalled, "verify_s"] * 8
    health = assess(trace)
    assert "stalls" in [p["kind"] for p in health["problems"]]
    assert health["outlier_steps"] == len(stalled)


def test_an_imported_trace_is_assessed_on_whole_steps() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from test_imported_downstream import _trace  # verify_s null, cycle_s known

    trace = _trace()
    assert not assess(trace)["problems"]  # steady steps
    first = trace.cycles["request_id"] == trace.requests["request_id"].iloc[0]
    trace.cycles.loc[first, "cycle_s"] *= 3.0  # the first request ran cold
    assert "warmup" in [p["kind"] for p in assess(trace)["problems"]]
