"""Every invariant violation is caught with the right file, line (or row) and field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_small_trace
from tracing import TraceError, read_trace, write_trace

Lines = list[dict[str, Any]]


def _lines(tmp_path: Path) -> Lines:
    path = tmp_path / "ok.jsonl"
    write_trace(make_small_trace(with_probs=True), path)
    return [json.loads(line) for line in path.read_text().splitlines()]


def _set(line: int, **fields: Any) -> Callable[[Lines], None]:
    def mutate(recs: Lines) -> None:
        recs[line - 1].update(fields)
    return mutate


def _drop(line: int, field: str) -> Callable[[Lines], None]:
    def mutate(recs: Lines) -> None:
        del recs[line - 1][field]
    return mutate


def _swap(a: int, b: int) -> Callable[[Lines], None]:
    def mutate(recs: Lines) -> None:
        recs[a - 1], recs[b - 1] = recs[b - 1], recs[a - 1]
    return mutate


# The file (see write_jsonl): 1 run, 2-4 cycles of r0, 5 request r0, 6-7 cycles of r1, 8 request r1.
CASES = [
    ("accepted > tau", _set(3, accepted=5), 3, "accepted", "accepted 5 > tau 4"),
    ("emitted > accepted+1", _set(4, emitted=3), 4, "emitted", "> accepted + 1"),
    ("negative draft_s", _set(2, draft_s=-0.1), 2, "draft_s", "must be a number >= 0"),
    ("negative verify_s", _set(6, verify_s=-1.0), 6, "verify_s", "must be a number >= 0"),
    ("negative prefill_s", _set(5, prefill_s=-1.0), 5, "prefill_s", "must be a number >= 0"),
    ("missing field", _drop(3, "tau"), 3, "tau", "missing required field"),
    ("wrong type", _set(2, accepted="4"), 2, "accepted", "expected integer"),
    ("float for int", _set(2, tau=4.0), 2, "tau", "expected integer"),
    ("bool for int", _set(7, cycle=True), 7, "cycle", "expected integer"),
    ("cycles out of order", _swap(3, 4), 3, "cycle", "expected cycle 1, got 2"),
    ("cycle not from 0", _set(6, cycle=1), 6, "cycle", "expected cycle 0"),
    ("emitted does not add up", _set(5, output_tokens=9), 5, "output_tokens", "!= sum"),
    ("prob list length", _set(2, draft_prob=[0.5]), 2, "draft_prob", "1 values for tau 4"),
    ("prob out of range", _set(3, target_prob=[0.9, 1.5, 0.7, 0.6]), 3, "target_prob", "[0, 1]"),
    ("end before start", _set(8, end_s=0.0), 8, "end_s", "before"),
    ("duplicate request", _set(8, request_id=0), 8, "request_id", "request 0 appears twice"),
    ("cycle repeated", _set(7, request_id=0, cycle=0), 7, "cycle", "expected cycle 3, got 0"),
    ("unknown type", _set(4, type="cyc"), 4, "type", "unknown record type"),
]


@pytest.mark.parametrize(("name", "mutate", "line", "field", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_jsonl_violation_names_line_and_field(
    tmp_path: Path, name: str, mutate: Callable[[Lines], None], line: int, field: str,
    message: str,
) -> None:
    recs = _lines(tmp_path)
    mutate(recs)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(TraceError) as err:
        read_trace(path)
    text = str(err.value)
    assert f"{path}:{line} field '{field}'" in text, text
    assert message in text
    assert "\n" not in text


def test_interleaved_requests_are_read_grouped(tmp_path: Path) -> None:
    """A batched server writes its concurrent requests' cycles step by step, interleaved: the
    reader gathers each request's cycles (file order kept within one); errors keep their lines."""
    recs = _lines(tmp_path)
    recs.insert(2, recs.pop(5))  # r1's cycle 0 between r0's cycles 0 and 1
    path = tmp_path / "interleaved.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    trace = read_trace(path)
    assert trace.cycles["request_id"].tolist() == [0, 0, 0, 1, 1]
    assert trace.cycles["cycle"].tolist() == [0, 1, 2, 0, 1]
    recs[3]["accepted"] = 9  # r0's cycle 1, now on line 4
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(TraceError, match=r"interleaved.jsonl:4 field 'accepted'"):
        read_trace(path)


def test_unparsable_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = (tmp_path / "ok.jsonl", _lines(tmp_path))[1]
    body = [json.dumps(r) for r in lines]
    body[2] = "{not json"
    path.write_text("\n".join(body) + "\n")
    with pytest.raises(TraceError, match=rf"{path}:3: not valid JSON"):
        read_trace(path)


def test_run_line_must_come_first(tmp_path: Path) -> None:
    recs = _lines(tmp_path)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs[1:]))
    with pytest.raises(TraceError, match=r":1 field 'type': cycle before the run line"):
        read_trace(path)


def test_parquet_violations_name_the_row(tmp_path: Path) -> None:
    src = tmp_path / "ok.parquet"
    write_trace(make_small_trace(), src)
    table = pq.read_table(src)
    accepted = table.column("accepted").to_pylist()
    accepted[3] = 7
    bad = table.set_column(table.schema.get_field_index("accepted"), "accepted",
                           pa.array(accepted, pa.int64()))
    path = tmp_path / "bad.parquet"
    pq.write_table(bad, path)
    with pytest.raises(TraceError, match=rf"{path} row 3 field 'accepted': accepted 7 > tau 2"):
        read_trace(path)


def test_parquet_wrong_column_type_and_nulls(tmp_path: Path) -> None:
    src = tmp_path / "ok.parquet"
    write_trace(make_small_trace(), src)
    table = pq.read_table(src)
    i = table.schema.get_field_index("tau")
    as_str = table.set_column(i, "tau", pa.array([str(v) for v in table.column("tau").to_pylist()]))
    pq.write_table(as_str, tmp_path / "str.parquet")
    with pytest.raises(TraceError, match=r"field 'tau': expected type int64, got string"):
        read_trace(tmp_path / "str.parquet")
    nulls = table.set_column(i, "tau", pa.array([4, None, 4, 2, 0], pa.int64()))
    pq.write_table(nulls, tmp_path / "null.parquet")
    with pytest.raises(TraceError, match=r"row 1 field 'tau': missing required value"):
        read_trace(tmp_path / "null.parquet")


def test_in_memory_trace_is_validated_too() -> None:
    from tracing import validate_trace

    trace = make_small_trace()
    validate_trace(trace)
    trace.cycles.loc[2, "overhead_s"] = -0.5
    with pytest.raises(TraceError, match=r"<trace> row 2 field 'overhead_s'"):
        validate_trace(trace)
    # NaN is a null: the split is then incomplete (v2: all three or none).
    trace.cycles.loc[2, "overhead_s"] = float("nan")
    with pytest.raises(TraceError, match=r"<trace> row 2 field 'overhead_s': overhead_s is null"):
        validate_trace(trace)
    trace.cycles.loc[2, "cycle_s"] = float("nan")
    with pytest.raises(TraceError, match=r"<trace> row 2 field 'overhead_s'"):
        validate_trace(trace)
