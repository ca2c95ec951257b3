"""live.load, load_arrivals, load_trace, load_summary without a server: schedules, arrival
files, the client trace rebuilt from chunks (with and without the server's per-step arrays)
and the summary's figures on hand-made records."""

from __future__ import annotations

from pathlib import Path

import pytest

from live.load import ClientRecord, LoadConfig, schedule
from live.load_summary import format_summary, summarize_records
from live.load_trace import client_trace
from tracing import validate_trace
from tracing.errors import SpecsimError


def _config(tmp_path: Path, **kw: object) -> LoadConfig:
    base: dict[str, object] = {"endpoint": "http://127.0.0.1:9", "prompts": "builtin:chat",
                               "requests": 3, "out": str(tmp_path / "c.jsonl"),
                               "concurrency": 2}
    base.update(kw)
    return LoadConfig(**base)  # type: ignore[arg-type]


def test_config_checks_its_flags(tmp_path: Path) -> None:
    with pytest.raises(SpecsimError, match="exactly one"):
        _config(tmp_path, rate=2.0)
    with pytest.raises(SpecsimError, match="--requests"):
        _config(tmp_path, requests=0)
    with pytest.raises(SpecsimError, match="http"):
        _config(tmp_path, endpoint="localhost:8000")
    (tmp_path / "c.jsonl").write_text("x")
    with pytest.raises(SpecsimError, match="--force"):
        _config(tmp_path)
    assert _config(tmp_path, force=True).force


def test_poisson_schedule_is_seeded_and_has_the_rate(tmp_path: Path) -> None:
    a = schedule(_config(tmp_path, concurrency=None, rate=5.0, requests=4000, seed=1))
    b = schedule(_config(tmp_path, concurrency=None, rate=5.0, requests=4000, seed=1))
    assert a == b and a is not None and a[0] == 0.0
    assert a == sorted(a)
    assert 4000 / a[-1] == pytest.approx(5.0, rel=0.06)
    assert schedule(_config(tmp_path)) is None  # closed loop


def test_arrival_files_give_the_send_times(tmp_path: Path) -> None:
    """Azure CSV and Mooncake JSONL through the simulator's reader: time order, from 0, gaps
    divided by --rate-scale; too few arrivals is a SpecsimError."""
    azure = tmp_path / "azure.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,374,44\n"
                     "2023-11-16 18:15:46.1805900,10,2\n"
                     "2023-11-16 18:15:48,7,1\n")
    got = schedule(_config(tmp_path, concurrency=None, arrivals=str(azure), requests=3))
    assert got is not None and [round(t, 6) for t in got] == [0.0, 0.5, 1.81941]
    moon = tmp_path / "moon.jsonl"
    moon.write_text('{"timestamp": 1000, "input_length": 5, "output_length": 3, "hash_ids": []}\n'
                    '{"timestamp": 2500, "input_length": 6, "output_length": 4}\n')
    cfg = _config(tmp_path, concurrency=None, arrivals=str(moon), requests=2, rate_scale=2.0)
    assert schedule(cfg) == [0.0, 0.75]
    with pytest.raises(SpecsimError, match="--arrivals"):
        schedule(_config(tmp_path, concurrency=None, arrivals=str(moon), requests=3))


def _records() -> list[ClientRecord]:
    """Two completed requests (one with specsim's step arrays, one bare) and one 503."""
    a = ClientRecord(0, 0.0, "p0", 8, request_id="chatcmpl-a", status=200,
                     chunks=[(0.30, 1), (0.40, 3), (0.45, 2)], end_s=0.46,
                     finish_reason="length", usage={"prompt_tokens": 12}, text="abc",
                     metrics={"queue_time_ms": 100.0,
                              "speculative_decoding": {"num_spec_steps": 3,
                                                       "per_step_drafted": [3, 3, 2]},
                              "steps": {
                         "drafted": [3, 3, 2], "accepted": [0, 2, 2], "emitted": [1, 3, 2],
                         "batch_size": [1, 2, 2], "cycle_ms": [50.0, 100.0, 50.0]}})
    b = ClientRecord(1, 0.1, "p1", 8, request_id="chatcmpl-b", status=200,
                     chunks=[(0.5, 2), (0.7, 1)], end_s=0.7, finish_reason="stop",
                     usage={"prompt_tokens": 5})
    c = ClientRecord(2, 0.2, "p2", 8, status=503, end_s=0.21, error="HTTP 503: overloaded")
    return [a, b, c]


def test_client_trace_from_chunks_and_server_steps(tmp_path: Path) -> None:
    trace = client_trace(_records(), _config(tmp_path), "m")
    validate_trace(trace)
    cyc = trace.cycles
    a = cyc[cyc["request_id"] == cyc["request_id"].iloc[0]]
    assert a["tau"].tolist() == [3, 3, 2]  # from the server's steps
    assert a["accepted"].tolist() == [0, 2, 2]  # the server's; the last step emitted 2 of 3
    assert a["emitted"].tolist() == [1, 3, 2]
    assert a["context_tokens"].tolist() == [12, 13, 16]
    assert a["start_s"].round(6).tolist() == [0.25, 0.30, 0.40]  # 0.30 - 50 ms, then gaps
    b = cyc[cyc["request_id"] == cyc["request_id"].iloc[-1]]
    assert b["tau"].tolist() == b["accepted"].tolist() == [1, 0]  # lower bound
    req = trace.requests
    assert req["start_s"].round(6).tolist() == [0.1, 0.1, 0.2]  # send + queue time
    assert req["prefill_s"].round(6).tolist() == [0.15, 0.0, 0.0]
    assert req["output_tokens"].tolist() == [6, 3, 0]
    assert trace.meta.extra["tau_basis"] == {"server steps": 1, "lower bound (accepted)": 1}
    assert trace.meta.extra["errors"] == 1
    assert trace.meta.extra["server_speculative_decoding"] == {
        "chatcmpl-a": {"num_spec_steps": 3}}
    assert req["stop_reason"].tolist() == ["length", "eos", "error"]


def test_summary_figures() -> None:
    s = summarize_records(_records(), wall_s=1.0)
    assert (s["requests"], s["completed"], s["errors"]) == (3, 2, 1)
    assert s["error_kinds"] == {"HTTP 503": 1}
    assert s["latency_s"]["p50"] == pytest.approx((0.46 + 0.6) / 2)
    assert s["ttft_s"]["mean"] == pytest.approx((0.30 + 0.4) / 2)
    assert s["tpot_s"]["mean"] == pytest.approx(((0.46 - 0.30) / 5 + (0.7 - 0.5) / 2) / 2)
    assert s["throughput_tok_s"] == 9.0 and s["tokens_per_chunk"] == pytest.approx(9 / 5)
    text = format_summary(s)
    assert "2/3 requests" in text and "HTTP 503: 1" in text
