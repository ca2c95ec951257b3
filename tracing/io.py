"""Reading, writing and converting traces; the format follows the file's extension."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tracing.errors import SpecsimError
from tracing.jsonl import read_jsonl, write_jsonl
from tracing.outputs import publish
from tracing.parquet import read_parquet, write_parquet
from tracing.trace import Trace
from tracing.validate import validate_trace

FORMATS = (".jsonl", ".parquet")


def trace_format(path: str | Path) -> str:
    """``.jsonl`` or ``.parquet``; anything else is a SpecsimError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise SpecsimError(f"{path}: unknown trace format '{suffix}' (use .jsonl or .parquet)")
    return suffix


def read_trace(path: str | Path, *, validate: bool = True, allow_truncated: bool = False) -> Trace:
    """Read a trace (.jsonl or .parquet) into frames and check every invariant.

    ``allow_truncated`` keeps the complete lines of a JSONL trace cut off by a crash.
    """
    fmt = trace_format(path)
    trace = read_jsonl(path, allow_truncated=allow_truncated) if fmt == ".jsonl" else read_parquet(path)
    if validate:
        validate_trace(trace)
    return trace


def write_trace(trace: Trace, path: str | Path) -> None:
    """Write a trace; the file appears whole or not at all (written aside, then renamed)."""
    fmt = trace_format(path)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=fmt, dir=path.parent or ".")
    os.close(fd)
    try:
        (write_jsonl if fmt == ".jsonl" else write_parquet)(trace, tmp)
        publish(tmp)  # mkstemp made it 0600; an output is readable like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_trace(src: str | Path, dst: str | Path) -> Trace:
    """Convert between JSONL and Parquet (validating on the way)."""
    trace_format(dst)
    if Path(src).resolve() == Path(dst).resolve():
        raise SpecsimError(f"{dst}: refusing to overwrite the input trace")
    trace = read_trace(src)
    write_trace(trace, dst)
    return trace
