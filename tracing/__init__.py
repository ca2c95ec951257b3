"""specsim's trace format: schema v2 (v1 read unchanged), JSONL/Parquet IO, validation, summary, Perfetto export."""

from tracing.errors import SpecsimError, TraceError, TruncatedTraceError
from tracing.io import convert_trace, read_trace, trace_format, write_trace
from tracing.jsonl import TraceWriter, read_jsonl, write_jsonl
from tracing.parquet import read_parquet, write_parquet
from tracing.perfetto import to_perfetto, write_perfetto
from tracing.runmeta import check_run_fields, parse_run_meta
from tracing.schema import (
    CYCLE_COLUMNS,
    CYCLE_SPLIT,
    KNOWN_SOURCES,
    REQUEST_COLUMNS,
    SCHEMA_VERSION,
    STOP_REASONS,
    CycleRecord,
    RequestId,
    RequestRecord,
    RunMeta,
)
from tracing.summary import (
    acceptance_by_position,
    interrupted_mask,
    percentiles,
    split_known,
    summarize,
)
from tracing.trace import Trace
from tracing.validate import validate_trace

__all__ = [
    "CYCLE_COLUMNS",
    "CYCLE_SPLIT",
    "KNOWN_SOURCES",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "STOP_REASONS",
    "CycleRecord",
    "RequestId",
    "RequestRecord",
    "RunMeta",
    "SpecsimError",
    "Trace",
    "TraceError",
    "TraceWriter",
    "TruncatedTraceError",
    "acceptance_by_position",
    "check_run_fields",
    "convert_trace",
    "interrupted_mask",
    "parse_run_meta",
    "percentiles",
    "read_jsonl",
    "read_parquet",
    "read_trace",
    "split_known",
    "summarize",
    "to_perfetto",
    "trace_format",
    "validate_trace",
    "write_jsonl",
    "write_parquet",
    "write_perfetto",
    "write_trace",
]
