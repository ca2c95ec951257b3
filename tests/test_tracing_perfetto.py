"""The Perfetto export is valid trace-event JSON whose slices add up to the cycles' durations."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import make_small_trace
from tracing import read_trace, write_perfetto


def test_perfetto_slices_add_up_to_cycle_durations(tmp_path: Path) -> None:
    trace = read_trace(Path(__file__).parent / "data" / "sample_synthetic.jsonl")
    out = tmp_path / "p.json"
    write_perfetto(trace, out)
    doc = json.loads(out.read_text())
    events = doc["traceEvents"]
    slices = defaultdict(float)
    for e in events:
        assert e["ph"] in {"X", "C", "M"}
        if e["ph"] == "X":
            assert e["dur"] >= 0 and e["ts"] >= 0
            slices[(e["pid"] - 1, e["cat"])] += e["dur"] / 1e6
    c = trace.cycles
    for rid, group in c.groupby("request_id"):
        assert slices[(rid, "draft")] == pytest.approx(group["draft_s"].sum(), rel=1e-9)
        assert slices[(rid, "verify")] == pytest.approx(group["verify_s"].sum(), rel=1e-9)
        assert slices[(rid, "overhead")] == pytest.approx(group["overhead_s"].sum(), rel=1e-9)
    prefill = trace.requests.set_index("request_id")["prefill_s"]
    for rid, value in prefill.items():
        assert slices[(rid, "prefill")] == pytest.approx(value)
    # One track (process) per request, named.
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {f"request {r}" for r in trace.requests["request_id"]}
    counters = [e for e in events if e["ph"] == "C" and e["name"] == "tau"]
    assert len(counters) == len(c)


def test_perfetto_phases_follow_each_other() -> None:
    from tracing import to_perfetto

    doc = to_perfetto(make_small_trace())
    r0 = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == 1 and e["cat"] != "prefill"]
    draft, verify = r0[0], r0[1]
    assert (draft["name"], verify["name"]) == ("draft", "verify")
    assert verify["ts"] == pytest.approx(draft["ts"] + draft["dur"])
    # A target-only step (tau = 0) has no draft slice.
    r1 = [e["name"] for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == 2]
    assert r1 == ["prefill", "draft", "verify", "overhead", "target step", "overhead"]
