"""Parquet traces: the analysis format.

The file's table is the cycles; the run metadata (JSON) and the requests (a small table next to
the cycles, as a base64 Arrow IPC stream) live in the file's key-value metadata, so one
``.parquet`` file is one trace.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tracing.errors import TraceError
from tracing.runmeta import parse_run_meta
from tracing.schema import CYCLE_COLUMNS, REQUEST_COLUMNS, SCHEMA_VERSION
from tracing.trace import ID_TYPES, Trace, arrow_schema, frame_to_table, table_to_frame

KEY_RUN = b"specsim.run"
KEY_REQUESTS = b"specsim.requests"


def write_parquet(trace: Trace, path: str | Path) -> None:
    """Write a trace as one Parquet file (cycles table; run and requests in the metadata)."""
    table = frame_to_table(trace.cycles, CYCLE_COLUMNS)
    requests = frame_to_table(trace.requests, REQUEST_COLUMNS)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, requests.schema) as stream:
        stream.write_table(requests)
    table = table.replace_schema_metadata(
        {
            KEY_RUN: json.dumps({**trace.meta.to_dict(), "schema_version": SCHEMA_VERSION},
                                allow_nan=False).encode(),
            KEY_REQUESTS: base64.b64encode(sink.getvalue().to_pybytes()),
        }
    )
    pq.write_table(table, str(path))


def read_parquet(path: str | Path) -> Trace:
    """Read a Parquet trace, checking column types and nulls; invariants are checked by validate."""
    path = str(path)
    try:
        # ParquetFile.read gives one chunk per row group (read_table: one per 128k-row batch),
        # so the frame's numeric columns can be views of Arrow's buffers, not copies.
        table = pq.ParquetFile(path).read()
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise TraceError(path, f"not a readable Parquet file ({exc})") from None
    raw = table.schema.metadata or {}
    if KEY_RUN not in raw:
        raise TraceError(path, "no specsim run metadata in the Parquet file", field="specsim.run")
    try:
        meta_dict = json.loads(raw[KEY_RUN])
    except json.JSONDecodeError as exc:
        raise TraceError(path, f"run metadata is not valid JSON ({exc.msg})",
                         field="specsim.run") from None
    try:
        blob = base64.b64decode(raw[KEY_REQUESTS], validate=True)
        requests = pa.ipc.open_stream(blob).read_all()
    except KeyError:
        raise TraceError(path, "no requests table in the metadata", field="specsim.requests") from None
    except (ValueError, pa.ArrowInvalid) as exc:
        raise TraceError(path, f"unreadable requests table ({exc})", field="specsim.requests") from None
    if not isinstance(meta_dict, dict):
        raise TraceError(path, "run metadata must be a JSON object", field="specsim.run")
    meta = parse_run_meta(f"{path} specsim.run", meta_dict)
    id_type = _check_table(path, table, CYCLE_COLUMNS)
    req_id_type = _check_table(f"{path} requests", requests, REQUEST_COLUMNS)
    if table.num_rows and requests.num_rows and not id_type.equals(req_id_type):
        raise TraceError(path, f"request_id is {id_type} in the cycles but {req_id_type} in the "
                         "requests (one kind per trace)", field="request_id")
    return Trace(
        meta=meta,
        requests=table_to_frame(requests),
        cycles=table_to_frame(table.replace_schema_metadata(None)),
        path=path,
    )


def _check_table(
    path: str, table: pa.Table, columns: dict[str, tuple[str, bool]]
) -> pa.DataType:
    """Column names, types and required values; the invariants are validate's. Returns the
    request_id type (int64 or string)."""
    unknown = set(table.column_names) - set(columns)
    if unknown:
        raise TraceError(path, "unknown column", field=sorted(unknown)[0])
    id_type = table.schema.field("request_id").type if "request_id" in table.column_names \
        else ID_TYPES[0]
    if not any(id_type.equals(t) for t in ID_TYPES):
        raise TraceError(path, f"expected type int64 or string, got {id_type}", field="request_id")
    for f in arrow_schema(columns, table.column_names, id_type):
        if f.name not in table.column_names:
            raise TraceError(path, "missing required column", field=f.name)
        column = table.column(f.name)
        if not column.type.equals(f.type):
            raise TraceError(path, f"expected type {f.type}, got {column.type}", field=f.name)
        if not f.nullable and column.null_count:
            row = column.is_null().to_numpy(zero_copy_only=False).argmax()
            raise TraceError(path, "missing required value", row=int(row), field=f.name)
    return id_type
