"""specsim's trace format: schema v2 (v1 read unchanged), JSONL/Parquet IO, validation, summary, Perfetto export.

Public names load their module on first use (``from tracing import read_trace``), so importing
``tracing`` (or ``tracing.errors``) never imports numpy, pandas or pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
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

_EXPORTS = {
    "SpecsimError": "tracing.errors",
    "TraceError": "tracing.errors",
    "TruncatedTraceError": "tracing.errors",
    "convert_trace": "tracing.io",
    "read_trace": "tracing.io",
    "trace_format": "tracing.io",
    "write_trace": "tracing.io",
    "TraceWriter": "tracing.jsonl",
    "read_jsonl": "tracing.jsonl",
    "write_jsonl": "tracing.jsonl",
    "read_parquet": "tracing.parquet",
    "write_parquet": "tracing.parquet",
    "to_perfetto": "tracing.perfetto",
    "write_perfetto": "tracing.perfetto",
    "check_run_fields": "tracing.runmeta",
    "parse_run_meta": "tracing.runmeta",
    "CYCLE_COLUMNS": "tracing.schema",
    "CYCLE_SPLIT": "tracing.schema",
    "CycleRecord": "tracing.schema",
    "KNOWN_SOURCES": "tracing.schema",
    "REQUEST_COLUMNS": "tracing.schema",
    "RequestId": "tracing.schema",
    "RequestRecord": "tracing.schema",
    "RunMeta": "tracing.schema",
    "SCHEMA_VERSION": "tracing.schema",
    "STOP_REASONS": "tracing.schema",
    "acceptance_by_position": "tracing.summary",
    "interrupted_mask": "tracing.summary",
    "percentiles": "tracing.summary",
    "split_known": "tracing.summary",
    "summarize": "tracing.summary",
    "Trace": "tracing.trace",
    "validate_trace": "tracing.validate",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


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
