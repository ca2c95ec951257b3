"""JSONL traces: the streaming capture format.

Line 1 is the ``run`` record (metadata); then ``cycle`` lines as cycles happen and a ``request``
line as each request completes. The writer flushes every line, so a crash loses at most the line
being written; the reader keeps every complete line of a trace cut off mid-line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from tracing.errors import SpecsimError, TraceError, TruncatedTraceError
from tracing.runmeta import parse_run_meta
from tracing.schema import (
    CYCLE_COLUMNS,
    REQUEST_COLUMNS,
    SCHEMA_VERSION,
    TYPE_CYCLE,
    TYPE_REQUEST,
    TYPE_RUN,
    CycleRecord,
    RequestRecord,
    RunMeta,
)
from tracing.trace import Trace, columns_to_frame, frame_to_table

# json.dumps with a reusable encoder: ~3x cheaper per record than json.dumps(obj) with defaults.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class TraceWriter:
    """Streaming JSONL trace writer; a context manager that flushes each record.

    >>> with TraceWriter("run.jsonl", meta) as w:
    ...     w.write_cycle(cycle)
    ...     w.write_request(request)
    """

    def __init__(self, path: str | Path, meta: RunMeta) -> None:
        self.path = str(path)
        self.meta = meta
        self._file: IO[str] | None = None

    def __enter__(self) -> TraceWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Create the file and write the run line."""
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._write(run_line(self.meta))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write_cycle(self, c: CycleRecord) -> None:
        """Append one cycle line (flushed)."""
        # Built by hand rather than dataclasses.asdict: this is the per-cycle hot path.
        rec: dict[str, Any] = {
            "type": TYPE_CYCLE,
            "request_id": c.request_id,
            "cycle": c.cycle,
            "start_s": c.start_s,
            "tau": c.tau,
            "accepted": c.accepted,
            "emitted": c.emitted,
            "draft_s": c.draft_s,
            "verify_s": c.verify_s,
            "overhead_s": c.overhead_s,
            "context_tokens": c.context_tokens,
        }
        if c.draft_s is None:  # the split is unknown: only the step's wall time
            del rec["draft_s"], rec["verify_s"], rec["overhead_s"]
        if c.batch_size is not None:
            rec["batch_size"] = c.batch_size
        if c.cycle_s is not None:
            rec["cycle_s"] = c.cycle_s
        if c.draft_prob is not None:
            rec["draft_prob"] = c.draft_prob
        if c.target_prob is not None:
            rec["target_prob"] = c.target_prob
        self._write(rec)

    def write_request(self, r: RequestRecord) -> None:
        """Append one request line (flushed)."""
        rec = {"type": TYPE_REQUEST, **{k: getattr(r, k) for k in REQUEST_COLUMNS}}
        self._write({k: v for k, v in rec.items() if v is not None})

    def _write(self, rec: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError(f"{self.path}: writer is not open")
        self._file.write(_encode(rec) + "\n")
        self._file.flush()


def token_ids_path(trace_path: str | Path) -> Path:
    """Where ``capture --record-tokens`` writes a trace's token ids, and where a replay of
    another n-gram size reads them: ``TRACE.tokens.ndjson`` beside the trace (JSON lines, one
    per request: ``request_id``, ``prompt_ids``, ``output_ids``; not a trace, hence not
    ``.jsonl``)."""
    return Path(f"{trace_path}.tokens.ndjson")


def json_lines(lines: Iterable[str], where: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank JSON line; a line that is not JSON is a
    SpecsimError naming ``where:line`` (strict JSON lines, for the small inputs read whole:
    prompt files, arrivals files; traces have their own reader, :func:`read_jsonl`)."""
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecsimError(f"{where}:{i}: not valid JSON ({exc.msg})") from None


def run_line(meta: RunMeta) -> dict[str, Any]:
    """The run line a writer writes: the metadata, stamped with this schema version."""
    return {"type": TYPE_RUN, **meta.to_dict(), "schema_version": SCHEMA_VERSION}


def write_jsonl(trace: Trace, path: str | Path) -> None:
    """Write a whole trace as JSONL: run line, then each request's cycles followed by its request
    line (the order a capture writes them in)."""
    cycles = _frame_rows(trace.cycles, CYCLE_COLUMNS)
    requests = _frame_rows(trace.requests, REQUEST_COLUMNS)
    by_request: dict[Any, list[dict[str, Any]]] = {}
    for rec in cycles:
        by_request.setdefault(rec["request_id"], []).append(rec)
    with open(path, "w", encoding="utf-8") as f:
        f.write(_encode(run_line(trace.meta)) + "\n")
        for req in requests:
            for rec in by_request.pop(req["request_id"], []):
                f.write(_encode({"type": TYPE_CYCLE, **rec}) + "\n")
            f.write(_encode({"type": TYPE_REQUEST, **req}) + "\n")
        for orphans in by_request.values():  # cycles of a request that never completed
            for rec in orphans:
                f.write(_encode({"type": TYPE_CYCLE, **rec}) + "\n")


def _frame_rows(frame: Any, columns: dict[str, tuple[str, bool]]) -> list[dict[str, Any]]:
    rows = frame_to_table(frame, columns).to_pylist()
    out = [{k: v for k, v in row.items() if v is not None} for row in rows]
    if columns is CYCLE_COLUMNS and len(frame):
        # cycle_s equal to its split is what a reader fills in: leave it out, as a capture does.
        split = (frame["draft_s"].to_numpy() + frame["verify_s"].to_numpy()
                 + frame["overhead_s"].to_numpy())
        for i in np.flatnonzero(split == frame["cycle_s"].to_numpy()):
            del out[i]["cycle_s"]
    return out


_PY_TYPES = {"int": "integer", "float": "number", "str": "string", "floatlist": "list of numbers",
             "id": "integer or string"}
_INT64 = 2**63
# Integers stored as float64 must still fit Arrow's integer conversion.
_FLOAT_INT = 2**53


def _is_number(x: Any) -> bool:
    t = type(x)
    return (t is float and math.isfinite(x)) or (t is int and -_FLOAT_INT <= x <= _FLOAT_INT)


def _check_value(kind: str, value: Any) -> bool:
    t = type(value)
    if kind == "int":
        return t is int and -_INT64 <= value < _INT64
    if kind == "float":
        return _is_number(value)
    if kind == "str":
        return t is str
    if kind == "id":
        return t is str or (t is int and -_INT64 <= value < _INT64)
    return t is list and all(_is_number(x) for x in value)


def parse_record(
    path: str, rec: dict[str, Any], columns: dict[str, tuple[str, bool]], **where: int
) -> list[Any]:
    """Check one record's fields against the column spec; ``where`` is ``line=`` or ``row=``."""
    values = []
    for name, (kind, required) in columns.items():
        value = rec.get(name)
        if value is None:
            if required:
                raise TraceError(path, "missing required field", field=name, **where)
        elif not _check_value(kind, value):
            got = f"{type(value).__name__} {value!r:.40}"
            if type(value) is int and kind in ("int", "id", "float"):
                got = f"an integer out of range ({value!r:.40})"
            elif type(value) is float:
                got = f"{value!r}"
            raise TraceError(path, f"expected {_PY_TYPES[kind]}, got {got}", field=name, **where)
        values.append(value)
    return values


def read_jsonl(path: str | Path, *, allow_truncated: bool = False) -> Trace:
    """Read a JSONL trace, checking every line's types; invariants are checked by validate.

    A last line without its newline that does not parse is a trace cut off by a crash: with
    ``allow_truncated`` the complete records are returned (``trace.meta.extra['truncated']`` says
    where); otherwise :class:`TruncatedTraceError` says how many records were read.
    """
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TraceError(path, "no such file") from None
    except IsADirectoryError:
        raise TraceError(path, "is a directory, not a file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a cut inside the last character of an unfinished last line is a cut, not bad text
        if not (allow_truncated and exc.start >= len(data) - 3
                and b"\n" not in data[exc.start:]):
            raise TraceError(path, f"not UTF-8 text ({exc.reason})") from None
        text = data[:exc.start].decode("utf-8")
    lines = text.split("\n")
    cut_off = not text.endswith("\n") and lines[-1] != ""
    if not cut_off:
        lines.pop()  # the empty string after the final newline
    meta: RunMeta | None = None
    cyc_cols: list[list[Any]] = [[] for _ in CYCLE_COLUMNS]
    req_cols: list[list[Any]] = [[] for _ in REQUEST_COLUMNS]
    cyc_lines: list[int] = []
    req_lines: list[int] = []
    truncated_at: int | None = None
    id_kind: type | None = None  # one kind of request_id per trace: int or str
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if cut_off and i == len(lines):
                n_read = len(cyc_lines) + len(req_lines) + (meta is not None)
                if not allow_truncated:
                    raise TruncatedTraceError(path, i, n_read) from None
                truncated_at = i
                break
            raise TraceError(path, f"not valid JSON ({exc.msg})", line=i) from None
        if not isinstance(rec, dict):
            raise TraceError(path, "a line must be a JSON object", line=i)
        kind = rec.get("type")
        if kind in (TYPE_CYCLE, TYPE_REQUEST):
            rid_kind = type(rec.get("request_id"))
            if id_kind is None and rid_kind in (int, str):
                id_kind = rid_kind
            elif id_kind is not None and rid_kind in (int, str) and rid_kind is not id_kind:
                raise TraceError(path, f"request_id is {rid_kind.__name__} but earlier ids are "
                                 f"{id_kind.__name__} (one kind per trace)", line=i,
                                 field="request_id")
        if kind == TYPE_CYCLE:
            if meta is None:
                raise TraceError(path, "cycle before the run line", line=i, field="type")
            for col, v in zip(cyc_cols, parse_record(path, rec, CYCLE_COLUMNS, line=i), strict=True):
                col.append(v)
            cyc_lines.append(i)
        elif kind == TYPE_REQUEST:
            if meta is None:
                raise TraceError(path, "request before the run line", line=i, field="type")
            for col, v in zip(req_cols, parse_record(path, rec, REQUEST_COLUMNS, line=i), strict=True):
                col.append(v)
            req_lines.append(i)
        elif kind == TYPE_RUN:
            if meta is not None:
                raise TraceError(path, "a second run line", line=i, field="type")
            meta = parse_run_meta(path, rec, line=i)
        else:
            raise TraceError(
                path, f"unknown record type {kind!r} (run|request|cycle)", line=i, field="type"
            )
    if meta is None:
        raise TraceError(path, "empty trace: no run line", line=1, field="type")
    if truncated_at is not None:
        meta.extra["truncated"] = {"line": truncated_at, "records_read": len(cyc_lines) + len(req_lines) + 1}
    cyc_cols, cyc_lines = _group_by_request(cyc_cols, cyc_lines)
    return Trace(
        meta=meta,
        requests=columns_to_frame(dict(zip(REQUEST_COLUMNS, req_cols, strict=True)), REQUEST_COLUMNS),
        cycles=columns_to_frame(dict(zip(CYCLE_COLUMNS, cyc_cols, strict=True)), CYCLE_COLUMNS),
        path=path,
        cycle_lines=np.asarray(cyc_lines, dtype=np.int64),
        request_lines=np.asarray(req_lines, dtype=np.int64),
    )


def _group_by_request(cols: list[list[Any]], lines: list[int]) -> tuple[list[list[Any]], list[int]]:
    """Gather each request's cycles together, requests in order of their first cycle, keeping
    file order within a request: a batched server writes the cycles of its concurrent requests
    interleaved, step by step. A trace already grouped is returned as it is."""
    rids = cols[0]  # request_id is the first cycle column
    first: dict[Any, int] = {}
    grouped = True
    for i, rid in enumerate(rids):
        if rid not in first:
            first[rid] = len(first)
        elif grouped and rids[i - 1] != rid:
            grouped = False
    if grouped:
        return cols, lines
    order = sorted(range(len(rids)), key=lambda i: first[rids[i]])  # stable
    return [[col[i] for i in order] for col in cols], [lines[i] for i in order]

