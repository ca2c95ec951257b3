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
        """``asked[i]``: what the policy asked of cycle i, UNKNOWN when the trace cannot say
        (a short proposal is only recognised against a known ask)."""
        n = int(emitted.sum()) + 1
        lo = np.zeros(n, dtype=np.int64)
        exact = np.zeros(n, dtype=bool)
        cap = np.full(n, UNKNOWN, dtype=np.int64)
        pos = 0
        for t, a, e, want in zip(tau.tolist(), accepted.tolist(), emitted.tolist(),
                                 asked.tolist(), strict=True):
            if want != UNKNOWN and t < want:
                cap[pos] = t  # the draft ran out of tokens to propose
            if t > 0:
                j = np.arange(min(a + 1 if a < t else a, n - pos))
                lo[pos + j] = np.maximum(lo[pos + j], a - j)
                if a < t:
                    exact[pos + j] = True
            pos += e
        return cls(lo, exact, cap)

    def at(self, pos: int) -> tuple[int, bool, int]:
        """(lower bound, exact, cap) at output position ``pos``."""
        if pos < self.lo.size:
            return int(self.lo[pos]), bool(self.exact[pos]), int(self.cap[pos])
        return 0, False, UNKNOWN


def asked_per_cycle(trace: Trace, tau: np.ndarray, room: np.ndarray) -> np.ndarray:
    """What the trace's policy asked of each cycle, where that is known: ``fixed`` asks for its
    tau (clipped by the decoder to the tokens left, ``room``); ``heuristic`` never asks for
    fewer than 1, so its tau = 0 cycles had no proposal. Other policies: UNKNOWN."""
    meta = trace.meta
    params = meta.policy_params or {}
    if meta.policy == "fixed" and "tau" in params:
        return np.minimum(int(params["tau"]), np.maximum(room, 0))
    asked = np.full(tau.size, UNKNOWN, dtype=np.int64)
    if meta.policy == "heuristic":
        asked[(tau == 0) & (room >= 1)] = 1
    return asked


def position_records(trace: Trace, order: np.ndarray) -> list[PositionRecord]:
    """Each request's PositionRecord, requests in the row order ``order``."""
    c = trace.cycles.sort_values(["request_id", "cycle"], kind="stable")
    n_out = c["request_id"].map(trace.requests.set_index("request_id")["output_tokens"])
    done = c.groupby("request_id", sort=False)["emitted"].cumsum() - c["emitted"]
    room = (n_out - done - 1).to_numpy(dtype=np.int64)
    tau = c["tau"].to_numpy(dtype=np.int64)
    asked = asked_per_cycle(trace, tau, room)
    acc, emitted = c["accepted"].to_numpy(dtype=np.int64), c["emitted"].to_numpy(dtype=np.int64)
    rid = c["request_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1], True])
    by_id = {
        rid[a]: PositionRecord.from_cycles(tau[a:b], acc[a:b], emitted[a:b], asked[a:b])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    }
    empty = PositionRecord(np.zeros(1, np.int64), np.zeros(1, bool), np.full(1, UNKNOWN))
    ids = trace.requests["request_id"].to_numpy()[order].tolist()
    return [by_id.get(i, empty) for i in ids]


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
