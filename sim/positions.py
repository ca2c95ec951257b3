"""Replay of acceptance by output position: what a trace says about its text.

Under greedy decoding every configuration of the same target and prompts emits the same tokens,
and a deterministic draft (n-gram lookup; a layer-skip or model draft at temperature 0) proposes
the same tokens from the same prefix. How many draft tokens the target accepts in a cycle that
starts at output position p is then a property of the text -- the draft's *agreement* at p --
not of the policy. A trace pins it down where its cycles went:

* a cycle at p that drafted tau and accepted a < tau: the agreement at p is exactly a, and (the
  draft continuing its own tokens) exactly a - j at p + j for j <= a;
* a cycle that accepted all tau is censored: the agreement is at least tau - j at p + j;
* a cycle that drafted fewer tokens than its policy asked for (an n-gram draft with a short or
  no match) fixes the draft's proposal length at p.

Positions the trace never drafted from are unknown. A simulated cycle at p asking for t tokens
drafts ``min(t, proposal length)`` and accepts the agreement at p, capped: exact where known,
else drawn from the request's fitted hazards given the known lower bound. Replaying the trace's
own policy reproduces its cycles exactly; another tau or policy reads the same text, so runs of
copyable tokens stay runs. Under sampling (temperature > 0) the record is one realisation of the
text -- exact for the trace's own policy, an approximation for any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tracing.trace import Trace

UNKNOWN = -1


@dataclass
class PositionRecord:
    """One request's knowledge per output position (index = tokens emitted before the cycle)."""

    lo: np.ndarray  # known lower bound on the draft's agreement
    exact: np.ndarray  # lo is the agreement itself
    cap: np.ndarray  # tokens the draft could propose there; UNKNOWN: as many as asked

    @classmethod
    def from_cycles(
        cls, tau: np.ndarray, accepted: np.ndarray, emitted: np.ndarray, asked: np.ndarray
    ) -> PositionRecord:
        """One request's record from its cycles in order. ``asked[i]``: what the policy asked of
        cycle i, UNKNOWN when the trace cannot say (a short proposal is only recognised against
        a known ask)."""
        n = int(emitted.sum()) + 1
        starts = np.cumsum(emitted) - emitted
        return cls(*_fill(n, starts, tau, accepted, asked))

    def at(self, pos: int) -> tuple[int, bool, int]:
        """(lower bound, exact, cap) at output position ``pos``."""
        if pos < self.lo.size:
            return int(self.lo[pos]), bool(self.exact[pos]), int(self.cap[pos])
        return 0, False, UNKNOWN


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
    from sim.policies import PolicyState, build_policy, useful_tau
    from tracing.errors import SpecsimError
    from tracing.schema import CycleRecord

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


def _fill(
    size: int, starts: np.ndarray, tau: np.ndarray, accepted: np.ndarray, asked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, exact, cap) over ``size`` positions from cycles starting at ``starts`` (vectorised:
    a million cycles in milliseconds). The spans of one request's cycles never overlap."""
    lo = np.zeros(size, dtype=np.int64)
    exact = np.zeros(size, dtype=bool)
    cap = np.full(size, UNKNOWN, dtype=np.int64)
    short = (asked != UNKNOWN) & (tau < asked)
    cap[starts[short]] = tau[short]  # the draft ran out of tokens to propose
    stopped = accepted < tau
    # a cycle that drafted tells a + 1 positions (the last one: 0) when it stopped early, a
    # (all >= 1, lower bounds) when everything it drafted was accepted
    span = np.where(tau > 0, np.where(stopped, accepted + 1, accepted), 0)
    span = np.minimum(span, size - starts)
    first = np.cumsum(span) - span
    j = np.arange(int(span.sum())) - np.repeat(first, span)  # offset inside each span
    at = np.repeat(starts, span) + j
    lo[at] = np.repeat(accepted, span) - j
    exact[at] = np.repeat(stopped, span)
    return lo, exact, cap


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
    lo, exact, cap = _fill(int(size.sum()), np.repeat(offset, n_cycles) + done, tau, acc, asked)
    by_id = {
        rid[f]: PositionRecord(lo[o : o + n], exact[o : o + n], cap[o : o + n])
        for f, o, n in zip(first.tolist(), offset.tolist(), size.tolist(), strict=True)
    }
    return [by_id.get(i, empty) for i in ids]  # ids: ints or strings (schema v2)


def draw_at(
    record: PositionRecord,
    pos: int,
    tau: int,
    survival: np.ndarray,
    propose: object,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """(drafted, accepted) of a cycle at output position ``pos`` asking for ``tau`` tokens.

    ``survival``: the request's P(first k drafted tokens accepted), k = 1..; ``propose(rng,
    tau)``: the fitted proposal length where the record does not know it.
    """
    lo, exact, cap = record.at(pos)
    if cap != UNKNOWN:
        tau = min(tau, cap)
    elif lo == 0 and not exact:
        tau = propose(rng, tau)  # type: ignore[operator]
    if tau <= 0:
        return 0, 0
    if exact or lo >= tau:
        return tau, min(tau, lo)
    # Unknown beyond lo: the depth G given G >= lo, from the request's survival S_k.
    floor = 1.0 if lo == 0 else float(survival[lo - 1])
    u = float(rng.random()) * floor
    depth = int(np.count_nonzero(survival[:tau] > u))
    return tau, min(tau, max(depth, lo))


def coverage(source: Trace, predicted: Trace) -> float:
    """Share of ``predicted``'s drafting cycles whose outcome ``source``'s record determines:
    its acceptance at that output position is known exactly, or known to reach at least the
    tokens drafted. The rest were drawn from hazards fitted on ``source`` -- a prediction
    whose drafting is mostly drawn extrapolates, however deep ``source`` drafted somewhere.
    Predicted request i replays source request ``i % n`` in arrival order (as the simulator
    lays them out); 1.0 when nothing was drafted."""
    from sim.acceptance import request_order

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
