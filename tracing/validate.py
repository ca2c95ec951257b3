"""Validation of every schema invariant, vectorised so a million cycles take milliseconds.

A violation raises :class:`TraceError` naming the file, the line (JSONL) or row (Parquet,
in-memory) and the field. Nothing is ever fixed silently.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from tracing.errors import TraceError
from tracing.schema import (
    CYCLE_COUNTS,
    CYCLE_DURATIONS,
    REQUEST_COUNTS,
    REQUEST_DURATIONS,
    SCHEMA_VERSION,
)
from tracing.trace import Trace

_TIME_TOLERANCE_S = 1e-9


class _Locator:
    """Turns a frame row into the error's location: a JSONL line or a row number."""

    def __init__(self, trace: Trace) -> None:
        self.path = trace.name
        self.cycle_lines = trace.cycle_lines
        self.request_lines = trace.request_lines

    def cycle(self, row: int, field: str, message: str) -> TraceError:
        if self.cycle_lines is not None and len(self.cycle_lines) > row:
            return TraceError(self.path, message, line=int(self.cycle_lines[row]), field=field)
        return TraceError(self.path, message, row=row, field=field)

    def request(self, row: int, field: str, message: str) -> TraceError:
        if self.request_lines is not None and len(self.request_lines) > row:
            return TraceError(self.path, message, line=int(self.request_lines[row]), field=field)
        return TraceError(f"{self.path} requests", message, row=row, field=field)


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True, or None."""
    if mask.any():
        return int(mask.argmax())
    return None


def validate_trace(trace: Trace) -> None:
    """Check every invariant of schema version 1; raise TraceError on the first violation."""
    meta = trace.meta
    if meta.schema_version != SCHEMA_VERSION:
        raise TraceError(
            trace.name,
            f"schema_version {meta.schema_version} is not supported (this is {SCHEMA_VERSION})",
            field="schema_version",
        )
    if meta.source not in ("live", "sim"):
        raise TraceError(trace.name, f"source must be 'live' or 'sim', got {meta.source!r}",
                         field="source")
    loc = _Locator(trace)
    _check_cycles(trace.cycles, loc)
    _check_requests(trace.requests, loc)
    _check_totals(trace.cycles, trace.requests, loc)


def _check_cycles(c: pd.DataFrame, loc: _Locator) -> None:
    if c.empty:
        return
    col: dict[str, Any] = {name: c[name].to_numpy() for name in c.columns
                           if not isinstance(c[name].dtype, pd.ArrowDtype)}
    for name in (*CYCLE_COUNTS, "start_s", *CYCLE_DURATIONS):
        # min() first: one cheap pass instead of a temporary mask per column; "not >= 0"
        # also catches NaN, which min() propagates.
        if not col[name].min() >= 0 and (row := _first(~(col[name] >= 0))) is not None:
            raise loc.cycle(row, name, f"must be a number >= 0, got {col[name][row]}")
    # Two scratch buffers reused for every check: fresh million-element temporaries cost more
    # in page faults than the arithmetic itself.
    tau, accepted, emitted = col["tau"], col["accepted"], col["emitted"]
    mask, mask2 = np.empty(len(tau), dtype=bool), np.empty(len(tau), dtype=bool)
    if np.greater(accepted, tau, out=mask).any():
        row = int(mask.argmax())
        raise loc.cycle(row, "accepted", f"accepted {accepted[row]} > tau {tau[row]}")
    diff = np.empty(len(tau), dtype=np.int64)
    np.subtract(emitted, accepted, out=diff)
    if diff.max() > 1:
        row = int(np.greater(diff, 1, out=mask).argmax())
        raise loc.cycle(row, "emitted", f"emitted {emitted[row]} > accepted + 1 = {accepted[row] + 1}")
    # Cycles of a request are contiguous and numbered 0, 1, 2, ...: within a request the
    # cycle number steps by one; where the request changes it restarts at 0.
    rid, cyc = col["request_id"], col["cycle"]
    same = mask
    same[0] = False
    np.equal(rid[1:], rid[:-1], out=same[1:])
    diff[0] = 1
    np.subtract(cyc[1:], cyc[:-1], out=diff[1:])
    np.not_equal(diff, 1, out=mask2)
    mask2 &= same  # a step other than +1 inside a request
    bad_restart = np.logical_not(same, out=np.empty_like(same))
    starts = np.flatnonzero(bad_restart)
    restart_bad = cyc[starts] != 0
    if mask2.any() or restart_bad.any():
        step_row = int(mask2.argmax()) if mask2.any() else len(cyc)
        restart_row = int(starts[restart_bad.argmax()]) if restart_bad.any() else len(cyc)
        row = min(step_row, restart_row)
        expected = 0 if row == restart_row else cyc[row - 1] + 1
        raise loc.cycle(row, "cycle", f"request {rid[row]}: expected cycle {expected}, got "
                        f"{cyc[row]} (cycles of a request must be contiguous from 0)")
    dup = pd.Series(rid[starts]).duplicated().to_numpy()
    if (i := _first(dup)) is not None:
        row = int(starts[i])
        raise loc.cycle(row, "request_id", f"cycles of request {rid[row]} are not contiguous "
                        "(it reappears after another request's cycles)")
    for name in ("draft_prob", "target_prob"):
        if name in c.columns:
            _check_prob_lists(c[name], tau, name, loc)


def _check_prob_lists(series: pd.Series, tau: np.ndarray, name: str, loc: _Locator) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.chunked_array(series.array._pa_array).combine_chunks()  # type: ignore[attr-defined]
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    if (row := _first(present & (lengths != tau))) is not None:
        raise loc.cycle(row, name, f"has {lengths[row]} values for tau {tau[row]}")
    values = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    bad = (values < 0) | (values > 1) | ~np.isfinite(values)
    if bad.any():
        # Map the first bad value back to its row through the cumulative list lengths.
        offsets = np.cumsum(np.where(present, lengths, 0))
        row = int(np.searchsorted(offsets, int(bad.argmax()), side="right"))
        raise loc.cycle(row, name, "probabilities must lie in [0, 1]")


def _check_requests(r: pd.DataFrame, loc: _Locator) -> None:
    if r.empty:
        return
    col = {name: r[name].to_numpy() for name in r.columns if r[name].dtype.kind in "iuf"}
    for name in (*REQUEST_COUNTS, *REQUEST_DURATIONS, "arrival_s"):
        if (row := _first(~(col[name] >= 0))) is not None:
            raise loc.request(row, name, f"must be a number >= 0, got {col[name][row]}")
    order = ("arrival_s", "start_s", "first_token_s", "end_s")
    for before, after in itertools.pairwise(order):
        if (row := _first(col[after] < col[before] - _TIME_TOLERANCE_S)) is not None:
            raise loc.request(row, after, f"{after} {col[after][row]} is before {before} "
                              f"{col[before][row]}")
    dup = r["request_id"].duplicated().to_numpy()
    if (row := _first(dup)) is not None:
        raise loc.request(row, "request_id", f"request {col['request_id'][row]} appears twice")


def _check_totals(c: pd.DataFrame, r: pd.DataFrame, loc: _Locator) -> None:
    """Sum of a request's emitted tokens equals its output_tokens."""
    if r.empty:
        return
    if c.empty:
        emitted_by_request = pd.Series(dtype=np.int64)
    else:
        rid = c["request_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1]])
        sums = np.add.reduceat(c["emitted"].to_numpy(), starts)
        emitted_by_request = pd.Series(sums, index=rid[starts])
    emitted = emitted_by_request.reindex(r["request_id"].to_numpy(), fill_value=0).to_numpy()
    out = r["output_tokens"].to_numpy()
    if (row := _first(emitted != out)) is not None:
        raise loc.request(row, "output_tokens", f"request {r['request_id'].iat[row]}: "
                          f"output_tokens {out[row]} != sum of its cycles' emitted {emitted[row]}")
