"""What a cut or crashed JSONL trace still holds: its complete records, and the requests that
never got their request line.

A capture, a server or a load run writes one line per record and flushes it, so a crash (a
SIGKILL, a full disk) loses at most the line being written; the cycles of requests still running
have no request line. :func:`orphan_cycles` counts those (``trace validate`` reports them rather
than calling such a trace plainly valid); :func:`salvage` (``trace validate --salvage OUT``)
reads every complete line of a cut trace -- the last line, cut mid-record, is left out, even when
the cut split a UTF-8 character -- checks them like any trace and writes them to OUT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.trace import Trace


def orphan_cycles(trace: Trace) -> dict[str, int]:
    """``cycles`` without a request line, and how many ``requests`` they belong to."""
    c, r = trace.cycles, trace.requests
    if not len(c):
        return {"cycles": 0, "requests": 0}
    lone = ~c["request_id"].isin(r["request_id"]) if len(r) else c["request_id"].notna()
    return {"cycles": int(lone.sum()), "requests": int(c.loc[lone, "request_id"].nunique())}


def salvage(src: str, out: str) -> dict[str, Any]:
    """Write the complete records of the JSONL trace ``src`` to ``out`` (format from its
    extension); returns what was kept and dropped. ``out`` must already be claimed."""
    from tracing.io import read_trace, trace_format, write_trace

    if trace_format(src) != ".jsonl":
        raise SpecsimError(f"{src}: --salvage reads JSONL traces (a Parquet file is written "
                           "whole or not at all)")
    if Path(out).resolve() == Path(src).resolve():
        raise SpecsimError(f"{out}: refusing to overwrite the trace being salvaged")
    trace = read_trace(src, allow_truncated=True)
    write_trace(trace, out)
    cut = trace.meta.extra.get("truncated")
    return {"out": out, "requests": len(trace.requests), "cycles": len(trace.cycles),
            "dropped_line": cut["line"] if isinstance(cut, dict) else None,
            "cycles_without_request": orphan_cycles(trace)["cycles"]}
