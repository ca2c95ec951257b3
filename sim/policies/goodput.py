"""The goodput policy: each engine step, the draft length that maximises the whole batch's
expected tokens per second (SmartSpec's idea, Liu et al. 2024).

Speculation pays at low load and stops paying at high load: a batch step's cost grows with the
tokens it scores (``batch x (tau + 1)``) once the device is busy, while the tokens a row gains
from drafting stay what its acceptance gives. So the choice is made per step, for the batch:

    goodput(t) = sum_i E_i[tokens](min(t, cap_i)) / step_cost(B, t),

``E_i[tokens](t) = 1 + sum_{k<=t} S_i(k)`` with ``S_i`` request i's survival (P(first k drafted
tokens accepted)), ``cap_i`` what request i can still use, and ``step_cost(B, t)`` the seconds
of one step of ``B`` rows drafting ``t`` tokens each (given by the server from its profiled
batched passes; without one, the single-stream costs learned from observed cycles, as the
adaptive policy learns them). One tau for the whole step: a padded batch pays for its longest
row, so a row drafting fewer tokens saves nothing. ``t = 0`` (target-only steps) wins when the
batch is large enough that scoring extra positions costs more than they bring.

Acceptance: each request keeps its own censoring-aware per-position estimate, shrunk toward the
run's pooled one with ``prior_weight`` pseudo-cycles (a request's first cycles lean on the run's
experience; a request whose draft keeps missing drafts less). Every ``probe_every`` steps it
drafts one token more than the best, so estimates of deeper positions stay fresh.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from sim.policies.base import (
    CostEstimate,
    HazardEstimate,
    Policy,
    PolicyState,
    StepCost,
    _check_float,
    _check_int,
    useful_tau,
)
from tracing.schema import CycleRecord


class _Shared:
    """What every fork of one goodput policy shares: the pooled acceptance and learned costs,
    and the step counter of the probing schedule."""

    def __init__(self, max_tau: int, decay: float) -> None:
        self.pooled = HazardEstimate(max_tau, decay)
        self.costs = CostEstimate(decay)
        self.steps = 0


class Goodput(Policy):
    """Per step, the tau in ``0..max_tau`` maximising the batch's expected tokens per second
    (see the module docstring); ``tau`` is the draft length before any cost is known."""

    name = "goodput"

    def __init__(
        self,
        max_tau: int = 8,
        tau: int = 4,
        decay: float = 0.98,
        prior_weight: float = 4.0,
        probe_every: int = 16,
    ) -> None:
        _check_int(self.name, "max_tau", max_tau, 1)
        _check_int(self.name, "probe_every", probe_every, 1)
        _check_float(self.name, "decay", decay, 0.5, 1.0)
        _check_float(self.name, "prior_weight", prior_weight, 0.0, 1e6)
        super().__init__(tau=min(tau, max_tau))
        self.max_tau, self.decay, self.probe_every = max_tau, float(decay), probe_every
        self.prior_weight = float(prior_weight)
        self.shared = _Shared(max_tau, self.decay)
        self.own = self._fresh_estimate()

    def params(self) -> dict[str, Any]:
        return {"max_tau": self.max_tau, "tau": self.tau, "decay": self.decay,
                "prior_weight": self.prior_weight, "probe_every": self.probe_every}

    def _fresh_estimate(self) -> HazardEstimate:
        return HazardEstimate(self.max_tau, decay=1.0, prior_weight=max(self.prior_weight, 1e-9))

    def fork(self) -> Policy:
        """The request's own acceptance estimate; pooled acceptance, costs and steps shared."""
        twin = copy.copy(self)
        twin.own = self._fresh_estimate()
        return twin

    def reset(self, request_id: int | str) -> None:
        self.own = self._fresh_estimate()

    def survival(self) -> list[float]:
        """This request's P(first k drafted tokens accepted), k = 1..max_tau."""
        return self.own.survival(prior=self.shared.pooled.hazards())

    def learned_step_cost(self, batch: int, tau: int) -> float | None:
        """A step's seconds from the costs learned from observed cycles (single-stream shaped:
        ``batch`` is not modelled), or None before any were observed."""
        costs = self.shared.costs
        if not costs.ready:
            return None
        assert costs.draft_per_token is not None
        return tau * costs.draft_per_token + costs.verify_cost(tau + 1)

    def next_tau(self, state: PolicyState) -> int:
        return self.plan_batch([self], [state])[0]

    def plan_batch(self, members: Sequence[Policy], states: Sequence[PolicyState]) -> list[int]:
        """One tau for the step, capped per row by what the row can still use."""
        if not states:
            return []
        caps = [useful_tau(s, self.max_tau) for s in states]
        batch = max(len(states), states[0].batch_size)
        step_cost: StepCost | None = states[0].step_cost
        prior = self.shared.pooled.hazards()
        survivals = [
            m.own.survival(prior=prior) if isinstance(m, Goodput) else self.own.survival(prior)
            for m in members
        ]
        self.shared.steps += 1
        top = max(caps)
        best, best_rate = -1, -1.0
        for t in range(top + 1):
            taus = [min(t, c) for c in caps]
            tokens = sum(1.0 + sum(s[:k]) for s, k in zip(survivals, taus, strict=True))
            longest = max(taus)
            cost = (step_cost(batch, longest) if step_cost is not None
                    else self.learned_step_cost(batch, longest))
            if cost is None:  # cold start: nothing measured, nothing given
                return [min(self.tau, c) for c in caps]
            rate = tokens / max(cost, 1e-12)
            if rate > best_rate * (1.0 + 1e-9):
                best, best_rate = t, rate
        if self.shared.steps % self.probe_every == 0 and best < top:
            best += 1
        return [min(best, c) for c in caps]

    def observe(self, cycle: CycleRecord) -> None:
        self.own.update(cycle.tau, cycle.accepted)
        self.shared.pooled.update(cycle.tau, cycle.accepted)
        self.shared.costs.update(cycle)


__all__ = ["Goodput"]
