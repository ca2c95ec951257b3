"""Acceptance models: how deep into a draft the target accepts.

Everything is expressed as per-position *hazards*: ``h_i`` = P(position i accepted | positions
before it accepted). ``iid``: ``h_i = alpha``. ``positional``: ``h_i = alpha[i-1]``, the last
value carried beyond the list. ``trace``: fitted from a trace with a censoring-aware estimate
(Kaplan-Meier style): ``h_i`` = cycles that accepted position i / cycles that *reached* position
i with ``tau >= i`` -- a cycle with tau=4 and all accepted says nothing about position 5. Beyond
the last well-estimated position (at least ``MIN_REACHED`` cycles reached it) the last
well-estimated hazard is carried, and ``extrapolated_from`` says where that starts. With
``context_buckets`` the fit is done per context-length bucket (a thin bucket falls back to the
pooled fit).

Sampling: the accepted depth of a cycle is ``min(tau, G)`` with ``G = #{k : S_k > u}``,
``u ~ U(0,1)`` and ``S_k = h_1 ... h_k`` the survival -- drawn in blocks with numpy so the
simulator pays one array read per cycle.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

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

    def __post_init__(self) -> None:
        self._survival = [np.cumprod(np.clip(f.hazards * self.scale, 0.0, 1.0)) for f in self.fits]

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


def fit_acceptance(trace: Trace, edges: list[int] | None = None) -> AcceptanceModel:
    """Censoring-aware hazards from a trace's cycles, per context bucket when ``edges`` given."""
    c = trace.cycles
    tau, acc = c["tau"].to_numpy(), c["accepted"].to_numpy()
    pooled = HazardFit.from_cycles(tau, acc)
    if pooled is None:
        raise SpecsimError(
            f"{trace.name}: too few speculative cycles to fit acceptance "
            f"(position 1 needs {MIN_REACHED})"
        )
    edges = list(edges or [])
    if not edges:
        return AcceptanceModel([pooled])
    bucket = np.searchsorted(np.asarray(edges), c["context_tokens"].to_numpy(), side="right")
    fits = []
    for b in range(len(edges) + 1):
        sel = bucket == b
        fits.append(HazardFit.from_cycles(tau[sel], acc[sel]) or pooled)
    return AcceptanceModel(fits, edges)


def build_acceptance(scenario: Scenario, trace: Trace | None = None) -> AcceptanceModel:
    """The acceptance model a scenario asks for (``[draft] alpha`` replaces it by iid)."""
    a, d = scenario.acceptance, scenario.draft
    if d.alpha is not None:
        model = AcceptanceModel([HazardFit(np.full(MAX_POSITIONS, d.alpha), None)])
    elif a.model == "trace":
        if trace is None:
            raise SpecsimError(f'{scenario.where}: [acceptance] model = "trace" needs a trace')
        model = fit_acceptance(trace, a.context_buckets)
    elif a.model == "positional":
        alphas = list(a.alpha) if isinstance(a.alpha, list) else [a.alpha]
        hz = np.full(MAX_POSITIONS, alphas[-1], dtype=float)
        hz[: min(len(alphas), MAX_POSITIONS)] = alphas[:MAX_POSITIONS]
        model = AcceptanceModel([HazardFit(hz, len(alphas) + 1)])
    else:
        alpha = a.alpha if isinstance(a.alpha, float | int) else a.alpha[0]
        model = AcceptanceModel([HazardFit(np.full(MAX_POSITIONS, float(alpha)), None)])
    model.scale = d.acceptance_scale
    model.confidence_concentration = a.draft_confidence
    model.__post_init__()
    return model
