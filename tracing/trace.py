"""The in-memory trace: run metadata plus one frame of requests and one of cycles.

All three readers (JSONL, Parquet, in-memory records) build frames the same way -- through an
Arrow table with the schema's types -- so a trace looks identical whatever it was read from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tracing.errors import SpecsimError
from tracing.schema import (
    CYCLE_COLUMNS,
    CYCLE_SPLIT,
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
# request_id: integers or strings, one kind per trace.
ID_TYPES = (pa.int64(), pa.string())


def arrow_schema(
    columns: dict[str, tuple[str, bool]], present: Iterable[str], id_type: pa.DataType = ID_TYPES[0]
) -> pa.Schema:
    """The Arrow schema of a frame: required columns always, optional ones when present."""
    present = set(present)
    return pa.schema(
        [
            pa.field(name, id_type if kind == "id" else _ARROW_TYPES[kind], nullable=not required)
            for name, (kind, required) in columns.items()
            if required or name in present
        ]
    )


def id_arrow_type(values: Sequence[Any] | pd.Series | np.ndarray) -> pa.DataType:
    """int64 for integer ids, string for string ids; a mix is a SpecsimError."""
    if isinstance(values, pd.Series | np.ndarray):
        if values.dtype.kind in "iu" or len(values) == 0:
            return ID_TYPES[0]
        values = list(values)
    kinds = {type(v) for v in values}
    if not kinds or kinds <= {int, np.int64}:
        return ID_TYPES[0]
    if kinds == {str}:
        return ID_TYPES[1]
    raise SpecsimError("request_id: a trace's ids must be all integers or all strings, got "
                       + " and ".join(sorted(k.__name__ for k in kinds)))


def complete_cycles(frame: pd.DataFrame) -> pd.DataFrame:
    """The split columns always present (NaN where unknown) and ``cycle_s`` filled from the
    split where absent -- what every reader hands on, whatever the file had (in place)."""
    n = len(frame)
    for name in CYCLE_SPLIT:
        if name not in frame.columns:
            frame[name] = np.full(n, np.nan)
    if "cycle_s" not in frame.columns:
        frame["cycle_s"] = (frame["draft_s"].to_numpy() + frame["verify_s"].to_numpy()
                            + frame["overhead_s"].to_numpy())
    elif frame["cycle_s"].hasnans:
        split = (frame["draft_s"].to_numpy() + frame["verify_s"].to_numpy()
                 + frame["overhead_s"].to_numpy())
        frame["cycle_s"] = frame["cycle_s"].fillna(pd.Series(split, index=frame.index))
    return frame


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow table -> the library's frame: writable numpy numerics (views of the table's buffers
    where that is possible -- the table is the reader's own -- so a million cycles are not
    copied), Python strings, Arrow-backed lists."""
    columns: dict[str, Any] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        kind = col.type
        if pa.types.is_list(kind):
            columns[name] = pd.arrays.ArrowExtensionArray(col)
        elif col.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            columns[name] = _numeric(col)
        else:  # strings, and numbers with nulls (NaN for floats, float for ints)
            columns[name] = col.to_pandas()
    return pd.DataFrame(columns, copy=False)


def _numeric(col: pa.ChunkedArray) -> np.ndarray:
    """A writable numpy array of a null-free numeric column: a view of the Arrow buffer when the
    column is one chunk in mutable memory (a reader's freshly read table, which nothing else
    holds), else a copy."""
    if col.num_chunks == 1:
        chunk: Any = col.chunk(0)  # a pa.Array (the stubs say ChunkedArray)
        data = chunk.buffers()[1]
        if data is not None and data.is_mutable:
            dtype = np.dtype(chunk.type.to_pandas_dtype())
            return np.frombuffer(data, dtype=dtype, count=len(chunk),
                                 offset=chunk.offset * dtype.itemsize)
    return col.to_numpy()


def frame_to_table(frame: pd.DataFrame, columns: dict[str, tuple[str, bool]]) -> pa.Table:
    """The library's frame -> an Arrow table with the schema's types (an all-null optional
    column is left out)."""
    present = [name for name in frame.columns
               if columns.get(name, ("", True))[1] or not frame[name].isna().all()]
    schema = arrow_schema(columns, present, id_arrow_type(frame["request_id"]))
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def columns_to_frame(
    data: dict[str, list[Any]], columns: dict[str, tuple[str, bool]]
) -> pd.DataFrame:
    """Column lists (as parsed from JSONL or records) -> the library's frame."""
    present = [name for name, values in data.items() if any(v is not None for v in values)]
    schema = arrow_schema(columns, present, id_arrow_type(data.get("request_id", [])))
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

    def __post_init__(self) -> None:
        # Frames built by hand (a simulation, a test) get the same cycle columns as read ones.
        cols = self.cycles.columns
        if ("cycle_s" not in cols or any(name not in cols for name in CYCLE_SPLIT)
                or self.cycles["cycle_s"].hasnans):
            self.cycles = complete_cycles(self.cycles)

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
        return [RequestRecord(**row) for row in _rows(self.requests, REQUEST_COLUMNS)]

    def cycle_records(self) -> list[CycleRecord]:
        """The cycles as record objects (optional fields None where absent)."""
        return [CycleRecord(**row) for row in _rows(self.cycles, CYCLE_COLUMNS)]


def _rows(frame: pd.DataFrame, columns: dict[str, tuple[str, bool]]) -> Iterable[dict[str, Any]]:
    blank = dict.fromkeys(columns)  # all-null optional columns are left out of the table
    for row in frame_to_table(frame, columns).to_pylist():
        yield {**blank, **row}
