"""Round trips JSONL <-> Parquet keep every field; the streaming writer survives a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_small_trace
from tracing import (
    CycleRecord,
    RequestRecord,
    RunMeta,
    SpecsimError,
    Trace,
    TraceWriter,
    TruncatedTraceError,
    read_trace,
    write_trace,
)

finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
prob = st.floats(min_value=0, max_value=1, allow_nan=False)
text = st.one_of(st.none(), st.text(max_size=30))


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    """Valid traces with random values in every field, optional fields sometimes present."""
    n_requests = draw(st.integers(0, 4))
    with_probs = draw(st.booleans())
    cycles, requests = [], []
    for rid in range(n_requests):
        n_cycles = draw(st.integers(0, 4))
        out = 0
        for i in range(n_cycles):
            tau = draw(st.integers(0, 5))
            acc = draw(st.integers(0, tau))
            emitted = draw(st.integers(0, acc + 1))
            out += emitted
            probs = draw(st.lists(prob, min_size=tau, max_size=tau)) if with_probs else None
            cycles.append(CycleRecord(rid, i, draw(finite), tau, acc, emitted, draw(finite),
                                      draw(finite), draw(finite), draw(st.integers(0, 10_000)),
                                      draft_prob=probs, target_prob=probs))
        t = sorted(draw(st.lists(finite, min_size=4, max_size=4)))
        requests.append(RequestRecord(rid, t[0], t[1], t[2], t[3], draw(st.integers(0, 999)),
                                      out, draw(finite), n_cycles, prompt_text=draw(text),
                                      output_text=draw(text)))
    meta = RunMeta(source=draw(st.sampled_from(["live", "sim"])), target_model=draw(st.text()),
                   draft_model="d", seed=draw(st.one_of(st.none(), st.integers(0, 2**31))),
                   policy_params={"tau": draw(st.integers(0, 9))}, extra={"x": [1, "two"]})
    return Trace.from_records(meta, requests, cycles)


def assert_same(a: Trace, b: Trace) -> None:
    assert a.meta == b.meta
    pd.testing.assert_frame_equal(a.requests, b.requests, check_dtype=False)
    pd.testing.assert_frame_equal(a.cycles, b.cycles, check_dtype=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trace=traces())
def test_round_trip_jsonl_parquet_jsonl_keeps_every_field(trace: Trace, tmp_path: Path) -> None:
    j1, pq_path, j2 = tmp_path / "a.jsonl", tmp_path / "b.parquet", tmp_path / "c.jsonl"
    write_trace(trace, j1)
    t1 = read_trace(j1)
    write_trace(t1, pq_path)
    t2 = read_trace(pq_path)
    write_trace(t2, j2)
    t3 = read_trace(j2)
    for other in (t1, t2, t3):
        assert_same(trace, other)
    assert j1.read_text() == j2.read_text()


def test_writer_flushes_each_record_and_a_crash_keeps_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    trace = make_small_trace()
    w = TraceWriter(path, trace.meta)
    w.open()
    for c in trace.cycle_records()[:3]:
        w.write_cycle(c)
    # Without closing, every record is already on disk (flushed per line).
    assert len(path.read_text().splitlines()) == 4
    w.write_request(trace.request_records()[0])
    w.close()
    # A crash in the middle of the next line: a partial JSON object without newline.
    with open(path, "a") as f:
        f.write('{"type":"cycle","request_id":1,"cyc')
    with pytest.raises(TruncatedTraceError) as err:
        read_trace(path)
    assert "5 complete records" in str(err.value) and ":6" in str(err.value)
    kept = read_trace(path, allow_truncated=True)
    assert len(kept.cycles) == 3 and len(kept.requests) == 1
    assert kept.meta.extra["truncated"]["line"] == 6


def test_writer_context_manager_and_record_order(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    trace = make_small_trace(with_probs=True)
    with TraceWriter(path, trace.meta) as w:
        for c in trace.cycle_records():
            w.write_cycle(c)
        for r in trace.request_records():
            w.write_request(r)
    types = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert types == ["run"] + ["cycle"] * 5 + ["request"] * 2
    assert_same(trace, read_trace(path))


def test_unknown_extension_and_missing_file_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(SpecsimError, match="unknown trace format"):
        read_trace(tmp_path / "x.csv")
    with pytest.raises(SpecsimError, match="no such file"):
        read_trace(tmp_path / "x.jsonl")


def test_write_is_atomic_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "keep.jsonl"
    path.write_text("precious\n")
    trace = make_small_trace()
    trace.meta.extra["bad"] = float("nan")  # JSON cannot hold NaN: the write fails
    with pytest.raises(ValueError):
        write_trace(trace, path)
    assert path.read_text() == "precious\n"
    assert list(tmp_path.iterdir()) == [path]
