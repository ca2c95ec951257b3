"""Validation of every schema invariant, vectorised so a million cycles take milliseconds.

A violation raises :class:`TraceError` naming the file, the line (JSONL) or row (Parquet,
in-memory) and the field. Nothing is ever fixed silently.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from tracing.errors import SpecsimError, TraceError
from tracing.runmeta import check_run_fields
from tracing.schema import (
    CYCLE_COUNTS,
    CYCLE_SPLIT,
    MAX_DRAFT_TOKENS,
    REQUEST_COUNTS,
    REQUEST_DURATIONS,
    REQUEST_TIMES,
    STOP_REASONS,
    SUPPORTED_VERSIONS,
    V1_SOURCES,
)
from tracing.trace import Trace, id_arrow_type

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
    """Check every invariant of the trace's schema version (1 or 2); raise TraceError on the
    first violation."""
    meta = trace.meta
    check_run_fields(trace.name, meta.to_dict())
    if meta.schema_version not in SUPPORTED_VERSIONS:
        raise TraceError(
            trace.name,
            f"schema_version {meta.schema_version} is not supported (this reads "
            f"{' and '.join(map(str, SUPPORTED_VERSIONS))})",
            field="schema_version",
        )
    if meta.schema_version == 1 and meta.source not in V1_SOURCES:
        raise TraceError(trace.name, f"source must be 'live' or 'sim', got {meta.source!r}",
                         field="source")
    if not meta.source.strip():
        raise TraceError(trace.name, "source must name what made the run (live, sim, vllm, "
                         "sglang, llamacpp, client, ...)", field="source")
    try:
        kinds = {id_arrow_type(f["request_id"]) for f in (trace.cycles, trace.requests)
                 if len(f)}
    except SpecsimError as exc:
        raise TraceError(trace.name, str(exc), field="request_id") from None
    if len(kinds) > 1:
        raise TraceError(trace.name, "request_id: the cycles' and the requests' ids are of "
                         "different kinds (one kind per trace)", field="request_id")
    loc = _Locator(trace)
    _check_cycles(trace.cycles, loc)
    _check_requests(trace.requests, loc)
    _check_totals(trace.cycles, trace.requests, loc)


def _check_cycles(c: pd.DataFrame, loc: _Locator) -> None:
    if c.empty:
        return
    col: dict[str, Any] = {name: c[name].to_numpy() for name in c.columns
                           if not isinstance(c[name].dtype, pd.ArrowDtype)}
    for name in CYCLE_COUNTS:
        if not col[name].min() >= 0 and (row := _first(~(col[name] >= 0))) is not None:
            raise loc.cycle(row, name, f"must be a number >= 0, got {col[name][row]}")
    if col["tau"].max() > MAX_DRAFT_TOKENS:
        row = int(np.argmax(col["tau"] > MAX_DRAFT_TOKENS))
        raise loc.cycle(row, "tau", f"{col['tau'][row]} drafted tokens in one step (more than "
                        f"{MAX_DRAFT_TOKENS:,})")
    _check_durations(col, loc)
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


def _check_durations(col: dict[str, Any], loc: _Locator) -> None:
    """start_s and cycle_s finite and >= 0; the split all three or none, each finite and >= 0,
    within cycle_s; batch_size on every cycle or none, an integer >= 1."""
    # One max() and one min() pass per column instead of temporary masks: "not >= 0" also
    # catches NaN (min() propagates it); the masks are built only to name the bad row.
    highs = {name: col[name].max() for name in CYCLE_SPLIT}
    split_known: np.ndarray | None = None  # None: every cycle has its split
    if any(np.isnan(h) for h in highs.values()):
        unknown = [np.isnan(col[name]) for name in CYCLE_SPLIT]
        for name, mask in zip(CYCLE_SPLIT[1:], unknown[1:], strict=True):
            if (row := _first(mask != unknown[0])) is not None:
                state = "null or NaN" if mask[row] else "given"
                other = "given" if mask[row] else "null or NaN"
                raise loc.cycle(row, name, f"{name} is {state} but draft_s is {other} (draft_s, "
                                "verify_s and overhead_s are given together or not at all)")
        split_known = ~unknown[0]
    for name in CYCLE_SPLIT:
        if split_known is None:
            ok = highs[name] < np.inf and col[name].min() >= 0
        else:
            v = col[name][split_known]
            ok = not v.size or (v.max() < np.inf and v.min() >= 0)
        if not ok:
            bad = ~((col[name] >= 0) & (col[name] < np.inf))
            if split_known is not None:
                bad &= split_known
            row = int(bad.argmax())
            raise loc.cycle(row, name, f"must be a number >= 0 and finite, got {col[name][row]}")
    for name in ("start_s", "cycle_s"):
        v = col[name]
        if not (v.min() >= 0 and v.max() < np.inf):
            row = int((~((v >= 0) & (v < np.inf))).argmax())
            what = (" (a cycle needs cycle_s or its draft_s/verify_s/overhead_s split)"
                    if name == "cycle_s" and np.isnan(v[row]) else "")
            raise loc.cycle(row, name, f"must be a number >= 0 and finite, got {v[row]}{what}")
    # split - cycle_s in one scratch buffer; within tolerance everywhere -> done (NaN where the
    # split is unknown is skipped by nanmax)
    cycle_s = col["cycle_s"]
    over = np.add(col["draft_s"], col["verify_s"])
    np.add(over, col["overhead_s"], out=over)
    np.subtract(over, cycle_s, out=over)
    worst = over.max() if split_known is None else np.nanmax(over, initial=0.0)
    if worst > _TIME_TOLERANCE_S:
        bad = over > cycle_s * 1e-9 + _TIME_TOLERANCE_S  # NaN (no split) is False
        if (row := _first(bad)) is not None:
            split = col["draft_s"][row] + col["verify_s"][row] + col["overhead_s"][row]
            raise loc.cycle(row, "cycle_s", f"cycle_s {cycle_s[row]} is shorter than its "
                            f"draft_s + verify_s + overhead_s {split}")
    if "batch_size" in col:
        b = col["batch_size"]
        if not (b.min() >= 1 and b.max() < np.inf) or (
                b.dtype.kind == "f" and (b != np.floor(b)).any()):
            row = int((~((b >= 1) & (b < np.inf) & (b == np.floor(b)))).argmax())
            raise loc.cycle(row, "batch_size", f"must be an integer >= 1 on every cycle (or on "
                            f"none), got {b[row]}")


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
    for name in (*REQUEST_COUNTS, *REQUEST_DURATIONS, *REQUEST_TIMES):
        if (row := _first(~((col[name] >= 0) & (col[name] < np.inf)))) is not None:
            raise loc.request(row, name, f"must be a number >= 0 and finite, got {col[name][row]}")
    if "stop_reason" in r.columns:
        reasons = r["stop_reason"]
        bad = reasons.notna() & ~reasons.isin(STOP_REASONS)
        if (row := _first(bad.to_numpy())) is not None:
            raise loc.request(row, "stop_reason", f"must be one of {', '.join(STOP_REASONS)}, "
                              f"got {reasons.iat[row]!r:.40}")
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
