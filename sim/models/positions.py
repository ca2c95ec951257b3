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

The records are made from a trace by calibration (:mod:`sim.calibrate.positions`); this module
holds the record and the replay draw, and never reads a trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        return cls(*fill_positions(n, starts, tau, accepted, asked))

    def at(self, pos: int) -> tuple[int, bool, int]:
        """(lower bound, exact, cap) at output position ``pos``."""
        if pos < self.lo.size:
            return int(self.lo[pos]), bool(self.exact[pos]), int(self.cap[pos])
        return 0, False, UNKNOWN


def fill_positions(
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
