"""The in-memory trace: run metadata plus one frame of requests and one of cycles.

All three readers (JSONL, Parquet, in-memory records) build frames the same way -- through an
Arrow table with the schema's types -- so a trace looks identical whatever it was read from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tracing.schema import (
    CYCLE_COLUMNS,
    REQUEST_COLUMNS,
    CycleRecord,
    RequestRecord,
    RunMeta,
)

_ARROW_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "floatlist": pa.list_(pa.float64()),
}


def arrow_schema(columns: dict[str, tuple[str, bool]], present: Iterable[str]) -> pa.Schema:
    """The Arrow schema of a frame: required columns always, optional ones when present."""
    present = set(present)
    return pa.schema(
        [
            pa.field(name, _ARROW_TYPES[kind], nullable=not required)
            for name, (kind, required) in columns.items()
            if required or name in present
        ]
    )


def _list_mapper(dtype: pa.DataType) -> pd.ArrowDtype | None:
    # Per-position lists stay Arrow-backed: converting a million of them to numpy objects
    # would cost more than reading the whole file.
    return pd.ArrowDtype(dtype) if pa.types.is_list(dtype) else None


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow table -> the library's frame (writable numpy numerics, Arrow-backed lists)."""
    return table.to_pandas(types_mapper=_list_mapper)


def frame_to_table(frame: pd.DataFrame, columns: dict[str, tuple[str, bool]]) -> pa.Table:
    """The library's frame -> an Arrow table with the schema's types."""
    schema = arrow_schema(columns, frame.columns)
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def columns_to_frame(
    data: dict[str, list[Any]], columns: dict[str, tuple[str, bool]]
) -> pd.DataFrame:
    """Column lists (as parsed from JSONL or records) -> the library's frame."""
    present = [name for name, values in data.items() if any(v is not None for v in values)]
    schema = arrow_schema(columns, present)
    n = len(next(iter(data.values()))) if data else 0
    arrays = [pa.array(data.get(f.name, [None] * n), type=f.type) for f in schema]
    return table_to_frame(pa.Table.from_arrays(arrays, schema=schema))


def _records_to_columns(
    records: Sequence[Any], columns: dict[str, tuple[str, bool]]
) -> dict[str, list[Any]]:
    return {name: [getattr(r, name) for r in records] for name in columns}


@dataclass
class Trace:
    """A run: metadata, requests frame, cycles frame.

    ``cycle_lines`` / ``request_lines`` map frame rows back to source lines (JSONL) so that
    validation errors can name the line; for Parquet and in-memory traces they are None and errors
    name the row.
    """

    meta: RunMeta
    requests: pd.DataFrame
    cycles: pd.DataFrame
    path: str | None = None
    cycle_lines: np.ndarray | None = field(default=None, repr=False)
    request_lines: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_records(
        cls,
        meta: RunMeta,
        requests: Sequence[RequestRecord],
        cycles: Sequence[CycleRecord],
        path: str | None = None,
    ) -> Trace:
        """Build a trace from record objects (a simulation, a capture, a test)."""
        return cls(
            meta=meta,
            requests=columns_to_frame(_records_to_columns(requests, REQUEST_COLUMNS), REQUEST_COLUMNS),
            cycles=columns_to_frame(_records_to_columns(cycles, CYCLE_COLUMNS), CYCLE_COLUMNS),
            path=path,
        )

    @property
    def name(self) -> str:
        """How errors and reports refer to this trace."""
        return self.path or "<trace>"

    def request_records(self) -> list[RequestRecord]:
        """The requests as record objects (optional fields None where absent)."""
        return [RequestRecord(**row) for row in _rows(self.requests, RequestRecord)]

    def cycle_records(self) -> list[CycleRecord]:
        """The cycles as record objects (optional fields None where absent)."""
        return [CycleRecord(**row) for row in _rows(self.cycles, CycleRecord)]


def _rows(frame: pd.DataFrame, record_type: type) -> Iterable[dict[str, Any]]:
    names = [f.name for f in fields(record_type) if f.name in frame.columns]
    table = pa.Table.from_pandas(frame[names], preserve_index=False)
    for row in table.to_pylist():
        yield {k: v for k, v in row.items()}
