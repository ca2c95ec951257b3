"""What a measured trace says about its text by output position (see :mod:`sim.models.positions` for
the reasoning): each request's :class:`~sim.models.positions.PositionRecord`, what the trace's policy
asked of each cycle (re-run over the trace when it can be), and how much of a predicted trace
the record covers. Part of calibration; the replay itself (:func:`sim.models.positions.draw_at`) never
reads a trace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.calibrate.requests import request_order
from sim.models.positions import UNKNOWN, PositionRecord, fill_positions
from sim.policies.library import PolicyState, build_policy, useful_tau
from tracing.errors import SpecsimError
from tracing.schema import CycleRecord
from tracing.trace import Trace

__all__ = ["UNKNOWN", "asked_per_cycle", "coverage", "draft_room", "position_records",
           "replay_asks"]


def draft_room(cycles: pd.DataFrame, trace: Trace, done: np.ndarray) -> np.ndarray:
    """Draft tokens each cycle had room for (its request's output tokens, less those emitted
    before it, less the target's own token): the decoder clips tau to this near the end.
    ``cycles`` sorted by request and cycle; ``done``: tokens emitted before each of them."""
    n_out = cycles["request_id"].map(trace.requests.set_index("request_id")["output_tokens"])
    return n_out.to_numpy(dtype=np.int64) - done - 1


REPLAY_MAX_CYCLES = 200_000  # a policy replay is a Python loop: skip it on huge traces


def asked_per_cycle(trace: Trace, cycles: pd.DataFrame, room: np.ndarray) -> np.ndarray:
    """What the trace's policy asked of each cycle (``cycles`` sorted by request and cycle;
    ``room``: draft tokens each had room for), UNKNOWN where the trace cannot say.

    ``fixed`` asks for its tau, clipped by the decoder to ``room``. Any other policy is re-run
    over the trace's own cycles (:func:`replay_asks`): it is a deterministic function of the
    cycle records it observed, and the trace holds exactly those records. Where that is not
    possible, ``heuristic`` still tells that its tau = 0 cycles had no proposal (it never asks
    for fewer than 1)."""
    meta = trace.meta
    params = meta.policy_params or {}
    tau = cycles["tau"].to_numpy(dtype=np.int64)
    if meta.policy == "fixed" and "tau" in params and not _budgeted(params):
        return np.minimum(int(params["tau"]), np.maximum(room, 0))
    replayed = replay_asks(trace, cycles)
    if replayed is not None:
        return replayed
    asked = np.full(tau.size, UNKNOWN, dtype=np.int64)
    if meta.policy == "heuristic":
        asked[(tau == 0) & (room >= 1)] = 1
    return asked


def _budgeted(params: dict[str, object]) -> bool:
    return bool(params.get("max_verify") or params.get("mean_verify"))


def replay_asks(trace: Trace, cycles: pd.DataFrame) -> np.ndarray | None:
    """The trace's policy re-run over its cycles: what it asked before each one (the decoder's
    ``useful_tau(state, policy.next_tau(state))``), or None when that cannot be known -- an
    unknown policy, a batched run (its policy saw cycles in an order the trace does not keep),
    a trace too large to loop over, or a replay that disagrees with the trace (a cycle that
    drafted more than was asked: not this policy, or not run this way).

    Requests replay in the order they started, as a capture runs them; ``max_new_tokens`` is
    the capture's (run metadata), else each request's output length (the simulator's)."""
    meta, extra = trace.meta, trace.meta.extra or {}
    if len(cycles) == 0 or len(cycles) > REPLAY_MAX_CYCLES or int(extra.get("max_batch", 1)) > 1:
        return None
    try:
        policy = build_policy(meta.policy, dict(meta.policy_params or {}))
    except SpecsimError:
        return None
    limit = extra.get("max_new_tokens")
    reqs = trace.requests.sort_values(["start_s", "request_id"], kind="stable")
    out_len = dict(zip(reqs["request_id"].tolist(), reqs["output_tokens"].tolist(), strict=True))
    cols = {k: cycles[k].tolist() for k in (
        "request_id", "cycle", "start_s", "tau", "accepted", "emitted", "draft_s", "verify_s",
        "overhead_s", "context_tokens")}
    rows_of: dict[int, list[int]] = {}
    for row, rid in enumerate(cols["request_id"]):
        rows_of.setdefault(rid, []).append(row)
    asked = np.full(len(cycles), UNKNOWN, dtype=np.int64)
    for rid in reqs["request_id"].tolist():
        policy.reset(rid)
        max_new = int(limit) if isinstance(limit, int) and limit > 0 else int(out_len[rid])
        done = 0
        for k, row in enumerate(rows_of.get(rid, [])):
            state = PolicyState(rid, k, int(cols["context_tokens"][row]), done, max_new, k)
            if policy.budget_exhausted(state):
                return None  # the trace ran a cycle the policy would not have
            ask = useful_tau(state, policy.next_tau(state))
            if cols["tau"][row] > ask:
                return None
            asked[row] = ask
            policy.observe(CycleRecord(**{key: values[row] for key, values in cols.items()}))
            done += int(cols["emitted"][row])
    return asked


def position_records(trace: Trace, order: np.ndarray) -> list[PositionRecord]:
    """Each request's PositionRecord, requests in the row order ``order``."""
    empty = PositionRecord(np.zeros(1, np.int64), np.zeros(1, bool), np.full(1, UNKNOWN))
    ids = trace.requests["request_id"].to_numpy()[order].tolist()
    c = trace.cycles.sort_values(["request_id", "cycle"], kind="stable")
    rid = c["request_id"].to_numpy()
    if rid.size == 0:
        return [empty for _ in ids]
    tau = c["tau"].to_numpy(dtype=np.int64)
    acc = c["accepted"].to_numpy(dtype=np.int64)
    emitted = c["emitted"].to_numpy(dtype=np.int64)
    bounds = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1], True])
    first, last = bounds[:-1], bounds[1:]
    n_cycles = last - first
    cum = np.cumsum(emitted)
    done = cum - emitted - np.repeat(cum[first] - emitted[first], n_cycles)  # before each cycle
    asked = asked_per_cycle(trace, c, draft_room(c, trace, done))
    # one run of positions per request (its tokens + 1), laid end to end
    size = np.add.reduceat(emitted, first) + 1
    offset = np.cumsum(size) - size
    lo, exact, cap = fill_positions(int(size.sum()), np.repeat(offset, n_cycles) + done, tau, acc, asked)
    by_id = {
        rid[f]: PositionRecord(lo[o : o + n], exact[o : o + n], cap[o : o + n])
        for f, o, n in zip(first.tolist(), offset.tolist(), size.tolist(), strict=True)
    }
    return [by_id.get(i, empty) for i in ids]  # ids: ints or strings (schema v2)


def coverage(source: Trace, predicted: Trace) -> float:
    """Share of ``predicted``'s drafting cycles whose outcome ``source``'s record determines:
    its acceptance at that output position is known exactly, or known to reach at least the
    tokens drafted. The rest were drawn from hazards fitted on ``source`` -- a prediction
    whose drafting is mostly drawn extrapolates, however deep ``source`` drafted somewhere.
    Predicted request i replays source request ``i % n`` in arrival order (as the simulator
    lays them out); 1.0 when nothing was drafted."""
    records = position_records(source, request_order(source))
    if not records:
        return 0.0
    c = predicted.cycles.sort_values(["request_id", "cycle"], kind="stable")
    tau = c["tau"].to_numpy(dtype=np.int64)
    if not (tau > 0).any():
        return 1.0
    rid = c["request_id"].to_numpy(dtype=np.int64)
    pos = (c.groupby("request_id", sort=False)["emitted"].cumsum() - c["emitted"]).to_numpy()
    known = 0
    for r, p, t in zip(rid[tau > 0].tolist(), pos[tau > 0].tolist(), tau[tau > 0].tolist(),
                       strict=True):
        lo, exact, _ = records[r % len(records)].at(int(p))
        known += exact or lo >= t
    return known / int((tau > 0).sum())
