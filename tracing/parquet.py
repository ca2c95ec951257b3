"""Parquet traces: the analysis format.

The file's table is the cycles; the run metadata and the requests (a small table next to the
cycles) live in the file's key-value metadata as JSON, so one ``.parquet`` file is one trace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tracing.errors import TraceError
from tracing.jsonl import parse_record
from tracing.schema import CYCLE_COLUMNS, REQUEST_COLUMNS, RunMeta
from tracing.trace import Trace, arrow_schema, columns_to_frame, frame_to_table, table_to_frame

KEY_RUN = b"specsim.run"
KEY_REQUESTS = b"specsim.requests"


def write_parquet(trace: Trace, path: str | Path) -> None:
    """Write a trace as one Parquet file (cycles table; run and requests in the metadata)."""
    table = frame_to_table(trace.cycles, CYCLE_COLUMNS)
    requests = frame_to_table(trace.requests, REQUEST_COLUMNS).to_pydict()
    table = table.replace_schema_metadata(
        {
            KEY_RUN: json.dumps(trace.meta.to_dict()).encode(),
            KEY_REQUESTS: json.dumps(requests).encode(),
        }
    )
    pq.write_table(table, str(path))


def read_parquet(path: str | Path) -> Trace:
    """Read a Parquet trace, checking column types and nulls; invariants are checked by validate."""
    path = str(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise TraceError(path, f"not a readable Parquet file ({exc})") from None
    raw = table.schema.metadata or {}
    if KEY_RUN not in raw:
        raise TraceError(path, "no specsim run metadata in the Parquet file", field="specsim.run")
    try:
        meta_dict = json.loads(raw[KEY_RUN])
        requests_cols: dict[str, list[Any]] = json.loads(raw.get(KEY_REQUESTS, b"{}"))
    except json.JSONDecodeError as exc:
        raise TraceError(path, f"metadata is not valid JSON ({exc.msg})") from None
    _check_cycles_table(path, table)
    requests = _requests_frame(path, requests_cols)
    table = table.replace_schema_metadata(None)
    return Trace(
        meta=RunMeta.from_dict(meta_dict),
        requests=requests,
        cycles=table_to_frame(table),
        path=path,
    )


def _check_cycles_table(path: str, table: pa.Table) -> None:
    expected = arrow_schema(CYCLE_COLUMNS, table.column_names)
    unknown = set(table.column_names) - set(CYCLE_COLUMNS)
    if unknown:
        raise TraceError(path, "unknown column", field=sorted(unknown)[0])
    for f in expected:
        if f.name not in table.column_names:
            raise TraceError(path, "missing required column", field=f.name)
        column = table.column(f.name)
        if not column.type.equals(f.type):
            raise TraceError(path, f"expected type {f.type}, got {column.type}", field=f.name)
        if not f.nullable and column.null_count:
            row = column.is_null().to_numpy(zero_copy_only=False).argmax()
            raise TraceError(path, "missing required value", row=int(row), field=f.name)


def _requests_frame(path: str, cols: dict[str, list[Any]]) -> Any:
    n = len(cols.get("request_id", []))
    where = f"{path} requests"
    for i in range(n):
        parse_record(where, {k: v[i] for k, v in cols.items()}, REQUEST_COLUMNS, row=i)
    return columns_to_frame({k: cols.get(k, [None] * n) for k in REQUEST_COLUMNS}, REQUEST_COLUMNS)
