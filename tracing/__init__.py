"""specsim's trace format: schema v1, JSONL/Parquet IO, validation, summary, Perfetto export."""

from tracing.errors import SpecsimError, TraceError, TruncatedTraceError
from tracing.io import convert_trace, read_trace, trace_format, write_trace
from tracing.jsonl import TraceWriter, read_jsonl, write_jsonl
from tracing.parquet import read_parquet, write_parquet
from tracing.perfetto import to_perfetto, write_perfetto
from tracing.schema import (
    CYCLE_COLUMNS,
    REQUEST_COLUMNS,
    SCHEMA_VERSION,
    CycleRecord,
    RequestRecord,
    RunMeta,
)
from tracing.summary import acceptance_by_position, percentiles, summarize
from tracing.trace import Trace
from tracing.validate import validate_trace

__all__ = [
    "CYCLE_COLUMNS",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "CycleRecord",
    "RequestRecord",
    "RunMeta",
    "SpecsimError",
    "Trace",
    "TraceError",
    "TraceWriter",
    "TruncatedTraceError",
    "acceptance_by_position",
    "convert_trace",
    "percentiles",
    "read_jsonl",
    "read_parquet",
    "read_trace",
    "summarize",
    "to_perfetto",
    "trace_format",
    "validate_trace",
    "write_jsonl",
    "write_parquet",
    "write_perfetto",
    "write_trace",
]
