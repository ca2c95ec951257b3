"""Acceptance models: how deep into a draft the target accepts.

Everything is expressed as per-position *hazards*: ``h_i`` = P(position i accepted | positions
before it accepted). ``iid``: ``h_i = alpha``. ``positional``: ``h_i = alpha[i-1]``, the last
value carried beyond the list. ``trace``: fitted from a trace with a censoring-aware estimate
(Kaplan-Meier style): ``h_i`` = cycles that accepted position i / cycles that *reached* position
i with ``tau >= i`` -- a cycle with tau=4 and all accepted says nothing about position 5. Beyond
the last well-estimated position (at least ``MIN_REACHED`` cycles reached it) the last
well-estimated hazard is carried, and ``extrapolated_from`` says where that starts. With
``context_buckets`` the fit is done per context-length bucket (a thin bucket falls back to the
pooled fit). With ``per_request`` each replayed request keeps its own hazards (shrunk toward the
pooled fit), so a replay keeps the prompt-to-prompt spread of acceptance; with ``replay`` acceptance
follows the trace's text by output position (:mod:`sim.models.positions`), drawing from the request's
own hazards only where the trace does not say -- under the trace's own policy that reproduces
the trace's cycles exactly.

The fits from a trace live in calibration (:mod:`sim.calibrate.acceptance`); this module holds
the model they make and samples from it, and never reads a trace.

Sampling: the accepted depth of a cycle is ``min(tau, G)`` with ``G = #{k : S_k > u}``,
``u ~ U(0,1)`` and ``S_k = h_1 ... h_k`` the survival -- drawn in blocks with numpy so the
simulator pays one array read per cycle (:class:`Depths` is that stream for one run).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from sim.models.positions import PositionRecord, draw_at

MAX_POSITIONS = 64  # deepest draft position modelled
MIN_REACHED = 20  # cycles that must reach a position for its hazard to count as estimated
BLOCK = 65536  # uniforms drawn per refill


def censored_hazards(tau: np.ndarray, accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position (1..max tau) hazard estimates and the cycles that reached each position."""
    tau, accepted = np.asarray(tau, dtype=np.int64), np.asarray(accepted, dtype=np.int64)
    spec = tau > 0
    tau, accepted = tau[spec], accepted[spec]
    k = int(tau.max()) if tau.size else 0
    # Position i is reached when i <= min(accepted + 1, tau); accepted when i <= accepted.
    reached = np.cumsum(np.bincount(np.minimum(accepted + 1, tau), minlength=k + 1)[::-1])[::-1]
    acc = np.cumsum(np.bincount(accepted, minlength=k + 1)[::-1])[::-1]
    reached, acc = reached[1:].astype(float), acc[1:].astype(float)
    hazard = np.divide(acc, reached, out=np.zeros_like(acc), where=reached > 0)
    return hazard, reached


@dataclass
class HazardFit:
    """Hazards of one context bucket, padded to MAX_POSITIONS, with the extrapolation point."""

    hazards: np.ndarray
    extrapolated_from: int | None  # first position (1-based) not estimated from data

    @classmethod
    def from_cycles(cls, tau: np.ndarray, accepted: np.ndarray) -> HazardFit | None:
        hz, reached = censored_hazards(tau, accepted)
        good = np.flatnonzero(reached >= MIN_REACHED)
        if good.size == 0:
            return None
        last = int(good[-1])  # positions past the last well-reached one are extrapolated
        out = np.full(MAX_POSITIONS, hz[last])
        out[: last + 1] = hz[: last + 1]
        return cls(out, last + 2 if last + 1 < MAX_POSITIONS else None)


@dataclass
class AcceptanceModel:
    """Hazards per context bucket (``edges`` split context lengths) and block sampling."""

    fits: list[HazardFit]
    edges: list[int] = field(default_factory=list)
    scale: float = 1.0  # [draft] acceptance_scale applied to every hazard
    confidence_concentration: float = 4.0
    # per_request: one row of hazards per trace request (in arrival order), or None
    request_hazards: np.ndarray | None = None
    # replay: what each trace request (arrival order) says about its text by output position
    positions: list[PositionRecord] | None = None
    # [draft] no_proposal_prob / proposal_caps: how often the draft proposes fewer than asked
    no_proposal_prob: float = 0.0
    proposal_caps: list[float] = field(default_factory=list)

    @property
    def short_proposals(self) -> bool:
        """True when the draft may propose fewer tokens than the policy asks for."""
        return self.no_proposal_prob > 0.0 or sum(self.proposal_caps) > 0.0

    def proposed(self, rng: np.random.Generator, tau: int) -> int:
        """Tokens the draft proposes when asked for ``tau``: none with ``no_proposal_prob``,
        else ``min(tau, cap)`` with the cap drawn from ``proposal_caps`` (uncapped past it)."""
        if tau <= 0 or not self.short_proposals:
            return tau
        u = float(rng.random())
        if u < self.no_proposal_prob:
            return 0
        u = (u - self.no_proposal_prob) / max(1.0 - self.no_proposal_prob, 1e-12)
        acc = 0.0
        for k, p in enumerate(self.proposal_caps[: tau - 1], start=1):
            acc += p
            if u < acc:
                return k
        return tau

    def __post_init__(self) -> None:
        self._survival = [np.cumprod(np.clip(f.hazards * self.scale, 0.0, 1.0)) for f in self.fits]
        self.request_survival: np.ndarray | None = None
        self._request_rev: list[list[float]] = []
        if self.request_hazards is not None:
            rs = np.cumprod(np.clip(self.request_hazards * self.scale, 0.0, 1.0), axis=1)
            self.request_survival = rs
            self._request_rev = [row[::-1].tolist() for row in rs]

    def draw_segments(
        self, rng: np.random.Generator, seg_len: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """Per-request mode: ``seg_len[i]`` depths for request i from trace request ``rows[i]``."""
        assert self.request_survival is not None
        u = rng.random(int(seg_len.sum()))
        out = np.empty(u.size, dtype=np.int64)
        bounds = np.concatenate(([0], np.cumsum(seg_len))).tolist()
        rev = self.request_survival[:, ::-1]
        for i, row in enumerate(rows.tolist()):
            a, b = bounds[i], bounds[i + 1]
            out[a:b] = MAX_POSITIONS - np.searchsorted(rev[row], u[a:b], side="right")
        return out

    def draw_at(self, rng: np.random.Generator, row: int, pos: int, tau: int) -> tuple[int, int]:
        """Replay mode: (drafted, accepted) of trace request ``row``'s cycle at output position
        ``pos`` asking for ``tau`` (see :mod:`sim.models.positions`)."""
        assert self.positions is not None
        survival = (self.request_survival[row] if self.request_survival is not None
                    else self._survival[0])
        return draw_at(self.positions[row], pos, tau, survival, self.proposed, rng)

    def draw_rows(self, rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
        """Per-request mode: one depth for each trace request in ``rows``."""
        u = rng.random(rows.size).tolist()
        return np.array(
            [
                MAX_POSITIONS - bisect.bisect_right(self._request_rev[r], x)
                for r, x in zip(rows.tolist(), u, strict=True)
            ],
            dtype=np.int64,
        )

    def bucket(self, context_tokens: int) -> int:
        """Index of the context bucket a cycle falls in."""
        return bisect.bisect_right(self.edges, context_tokens) if self.edges else 0

    def survival(self, bucket: int = 0) -> np.ndarray:
        """P(first k drafted tokens accepted), k = 1..MAX_POSITIONS."""
        return self._survival[bucket]

    def expected_tokens(self, tau: int, bucket: int = 0) -> float:
        """E[tokens emitted by a cycle drafting tau] = 1 + S_1 + ... + S_tau."""
        return 1.0 + float(self._survival[bucket][:tau].sum())

    def draw_depths(self, rng: np.random.Generator, count: int = BLOCK) -> list[np.ndarray]:
        """Accepted depths G for ``count`` cycles, one row per bucket from the same uniforms."""
        u = rng.random(count)
        # S is non-increasing: #(S_k > u) = MAX - #(S_k <= u), a search on the ascending reverse.
        return [MAX_POSITIONS - np.searchsorted(s[::-1], u, side="right") for s in self._survival]

    def sample_with_confidence(
        self, rng: np.random.Generator, tau: int, bucket: int, keep_drafting: object
    ) -> tuple[int, int, list[float]]:
        """Token by token, for policies that stop drafting on the draft's confidence.

        A calibrated draft: its confidence in position i is ``q ~ Beta(c*h_i, c*(1-h_i))`` and
        the target accepts with probability ``q`` (so the mean acceptance stays ``h_i``).
        Returns (drafted, accepted, draft_probs).
        """
        hz = np.clip(self.fits[bucket].hazards * self.scale, 1e-6, 1 - 1e-6)
        c = self.confidence_concentration
        probs: list[float] = []
        accepted, rejected = 0, False
        for i in range(tau):
            q = float(rng.beta(c * hz[i], c * (1 - hz[i]))) if c > 0 else float(hz[i])
            probs.append(q)
            if not rejected and rng.random() < q:
                accepted += 1
            else:
                rejected = True
            if not keep_drafting(i, q):  # type: ignore[operator]
                break
        return len(probs), accepted, probs

    def extrapolated_from(self) -> int | None:
        """The first extrapolated position over all buckets (None: nothing extrapolated)."""
        points = [f.extrapolated_from for f in self.fits if f.extrapolated_from is not None]
        return min(points) if points else None

    def info(self) -> dict[str, object]:
        """For figures: the hazards (first 16 positions) and where extrapolation starts."""
        return {
            "hazards": [[round(float(h), 4) for h in f.hazards[:16]] for f in self.fits],
            "context_edges": list(self.edges),
            "extrapolated_from": [f.extrapolated_from for f in self.fits],
        }


class Depths:
    """The run's stream of accepted depths, drawn in blocks from the one generator."""

    def __init__(self, model: AcceptanceModel, rng: np.random.Generator) -> None:
        self.model, self.rng = model, rng
        self.pos = BLOCK
        self.block: list[list[int]] = []
        self.arrays: list[np.ndarray] = []

    def refill(self) -> None:
        self.arrays = self.model.draw_depths(self.rng)
        self.block = []  # Python lists for the batch server, made on first use
        self.pos = 0

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` depths of bucket 0 as an array (the static stream plan)."""
        parts, need = [], count
        while need > 0:
            if self.pos >= BLOCK:
                # No block in use: draw just what is asked. The plan is the run's only draw
                # from the generator, and a generator's uniforms come in one sequence however
                # they are split into calls: the same depths a block would have held.
                parts.append(self.model.draw_depths(self.rng, need)[0])
                break
            k = min(need, BLOCK - self.pos)
            parts.append(self.arrays[0][self.pos : self.pos + k])
            self.pos += k
            need -= k
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def next(self, bucket: int) -> int:
        """One depth (batch server)."""
        if self.pos >= BLOCK:
            self.refill()
        if not self.block:
            self.block = [a.tolist() for a in self.arrays]
        self.pos += 1
        return self.block[bucket][self.pos - 1]
