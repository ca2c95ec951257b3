"""Schema v2: string ids kept exactly, cycle_s without a split, batch_size, stop_reason, typed
run lines, v1 files read unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_small_trace
from tracing import (
    CycleRecord,
    RequestRecord,
    RunMeta,
    Trace,
    TraceError,
    read_trace,
    summarize,
    to_perfetto,
    write_trace,
)

SAMPLE = Path(__file__).parent / "data" / "sample_synthetic.jsonl"


def _string_id_trace() -> Trace:
    meta = RunMeta(source="vllm", target_model="t", draft_model="d")
    ids = ["chatcmpl-a1", "cmpl-7f"]
    cycles = [CycleRecord(ids[0], 0, 0.1, 3, 2, 3, None, None, None, 10, batch_size=4,
                          cycle_s=0.03),
              CycleRecord(ids[0], 1, 0.13, 3, 0, 1, None, None, None, 13, batch_size=2,
                          cycle_s=0.02),
              CycleRecord(ids[1], 0, 0.2, 2, 2, 3, None, None, None, 5, batch_size=1,
                          cycle_s=0.01)]
    requests = [RequestRecord(ids[0], 0.0, 0.0, 0.1, 0.15, 10, 4, 0.1, 2, stop_reason="eos"),
                RequestRecord(ids[1], 0.1, 0.1, 0.2, 0.9, 5, 3, 0.1, 1,
                              stop_reason="interrupted")]
    return Trace.from_records(meta, requests, cycles)


@pytest.mark.parametrize("ext", [".jsonl", ".parquet"])
def test_string_ids_and_v2_fields_round_trip(tmp_path: Path, ext: str) -> None:
    trace = _string_id_trace()
    path = tmp_path / f"t{ext}"
    write_trace(trace, path)
    back = read_trace(path)
    assert back.requests["request_id"].tolist() == ["chatcmpl-a1", "cmpl-7f"]
    assert back.cycles["request_id"].tolist() == ["chatcmpl-a1", "chatcmpl-a1", "cmpl-7f"]
    assert back.cycles["batch_size"].tolist() == [4, 2, 1]
    assert back.cycles["cycle_s"].tolist() == [0.03, 0.02, 0.01]
    assert back.cycles["draft_s"].isna().all()
    assert back.requests["stop_reason"].tolist() == ["eos", "interrupted"]
    assert [c.request_id for c in back.cycle_records()] == back.cycles["request_id"].tolist()
    assert back.meta.schema_version == 2 and back.meta.source == "vllm"


def test_integer_ids_stay_integers(tmp_path: Path) -> None:
    write_trace(make_small_trace(), tmp_path / "t.parquet")
    back = read_trace(tmp_path / "t.parquet")
    assert back.requests["request_id"].dtype.kind == "i"
    assert back.requests["request_id"].tolist() == [0, 1]


def test_perfetto_keeps_string_ids() -> None:
    events = to_perfetto(_string_id_trace())["traceEvents"]
    names = [e["args"]["name"] for e in events if e["name"] == "process_name"]
    assert names == ["request chatcmpl-a1", "request cmpl-7f"]
    steps = [e for e in events if e["name"] == "step"]
    assert [e["args"]["request_id"] for e in steps] == ["chatcmpl-a1", "chatcmpl-a1", "cmpl-7f"]
    assert [e["dur"] for e in steps] == pytest.approx([30000, 20000, 10000])
    assert [e["args"]["batch_size"] for e in steps] == [4, 2, 1]


def test_summary_leaves_interrupted_out_and_says_what_it_lacks() -> None:
    s = summarize(_string_id_trace())
    assert s["requests"] == 2 and s["interrupted_requests"] == 1
    assert s["latency_s"]["mean"] == pytest.approx(0.15)  # the interrupted 0.8 s left out
    assert summarize(_string_id_trace(), include_interrupted=True)["latency_s"]["mean"] == \
        pytest.approx((0.15 + 0.8) / 2)
    assert s["time_s"]["draft"] is None and s["time_s"]["cycle"] == pytest.approx(0.06)
    assert "time_s.draft/verify/overhead" in s["unavailable"]
    assert s["mean_batch_size"] == pytest.approx(7 / 3)


def test_v1_file_reads_unchanged(tmp_path: Path) -> None:
    v1 = tmp_path / "v1.jsonl"
    v1.write_text(SAMPLE.read_text().replace('"schema_version":2', '"schema_version":1', 1))
    a, b = read_trace(v1), read_trace(SAMPLE)
    assert a.meta.schema_version == 1
    assert a.cycles.equals(b.cycles) and a.requests.equals(b.requests)
    c = a.cycles
    assert c["cycle_s"].to_numpy() == pytest.approx(
        (c["draft_s"] + c["verify_s"] + c["overhead_s"]).to_numpy())
    # v1 still allows only live | sim as the source
    v1.write_text(v1.read_text().replace('"source":"sim"', '"source":"vllm"', 1))
    with pytest.raises(TraceError, match="field 'source'"):
        read_trace(v1)


def _lines() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


def _write(tmp_path: Path, recs: list[dict]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.mark.parametrize(("line", "field", "value", "message"), [
    (1, "policy", {"name": "fixed"}, "expected string"),
    (1, "policy_params", [1, 2], "expected object"),
    (1, "policy_params", 3, "expected object"),
    (1, "temperature", float("nan"), "expected number"),
    (1, "seed", "7", "expected integer or null"),
    (1, "device_count", True, "expected integer"),
    (2, "context_tokens", 2**70, "out of range"),
    (2, "request_id", 2**70, "out of range"),
    (2, "start_s", float("nan"), "expected number"),
    (2, "batch_size", 0, "integer >= 1"),
    (2, "cycle_s", 0.0, "shorter than"),
    (2, "request_id", "r0", "one kind per trace"),
])
def test_bad_fields_name_line_and_field(tmp_path: Path, line: int, field: str, value: object,
                                        message: str) -> None:
    recs = _lines()
    if field == "batch_size":  # on every cycle, so only the value is wrong
        for r in recs:
            if r["type"] == "cycle":
                r["batch_size"] = 1
    recs[line - 1][field] = value
    path = _write(tmp_path, recs)
    with pytest.raises(TraceError) as err:
        read_trace(path)
    bad_line = 3 if field == "request_id" and value == "r0" else line
    if field == "request_id" and value == "r0":  # line 2 sets the kind; line 3 breaks it
        recs[line - 1][field] = 0
        recs[2]["request_id"] = "r0"
        path = _write(tmp_path, recs)
        with pytest.raises(TraceError) as err:
            read_trace(path)
    assert f"{path}:{bad_line} field '{field}'" in str(err.value)
    assert message in str(err.value)


def test_split_is_all_or_none_and_cycle_s_needed(tmp_path: Path) -> None:
    recs = _lines()
    del recs[1]["verify_s"]
    with pytest.raises(TraceError, match=r":2 field 'verify_s'.*together"):
        read_trace(_write(tmp_path, recs))
    for k in ("draft_s", "overhead_s"):
        del recs[1][k]
    with pytest.raises(TraceError, match=r":2 field 'cycle_s'.*needs cycle_s"):
        read_trace(_write(tmp_path, recs))
    recs[1]["cycle_s"] = 0.05
    assert len(read_trace(_write(tmp_path, recs)).cycles) > 1


def test_stop_reason_is_checked(tmp_path: Path) -> None:
    recs = _lines()
    i = next(i for i, r in enumerate(recs) if r["type"] == "request")
    recs[i]["stop_reason"] = "tired"
    with pytest.raises(TraceError, match=f":{i + 1} field 'stop_reason': must be one of"):
        read_trace(_write(tmp_path, recs))


def test_parquet_run_metadata_and_values_are_checked(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    write_trace(make_small_trace(), path)
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    run = json.loads(meta[b"specsim.run"])
    run["policy"] = {"name": "fixed"}
    bad = table.replace_schema_metadata({**meta, b"specsim.run": json.dumps(run).encode()})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(TraceError, match=r"bad.parquet specsim.run field 'policy': expected "
                                         r"string"):
        read_trace(tmp_path / "bad.parquet")
    i = table.column_names.index("verify_s")
    values = table.column("verify_s").to_pylist()
    values[1] = float("nan")
    nan = table.set_column(i, "verify_s", pa.array(values, pa.float64()))
    pq.write_table(nan, tmp_path / "nan.parquet")
    with pytest.raises(TraceError, match=r"row 1 field 'verify_s'"):
        read_trace(tmp_path / "nan.parquet")
