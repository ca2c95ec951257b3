"""The policy interface shared by the live decoder and the simulator: what a policy sees before
a cycle (:class:`PolicyState`), the base :class:`Policy` (a fixed draft length, optionally by
batch size), and the online estimates the learning policies build on (:class:`HazardEstimate`,
:class:`CostEstimate`). The protocol is described in :mod:`sim.policies.library`; the policies
themselves live there and in :mod:`sim.policies.goodput`. Plain Python: no torch, no SimPy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tracing.errors import SpecsimError
from tracing.schema import CycleRecord

# Seconds of one engine step over ``batch`` rows that each draft ``tau`` tokens (draft passes,
# the verify pass scoring ``tau + 1`` tokens per row, per-step overhead).
StepCost = Callable[[int, int], float]


@dataclass(slots=True)
class PolicyState:
    """What a policy may look at before a cycle of one request."""

    request_id: int | str
    cycle: int  # index of the cycle about to run
    context_tokens: int  # prompt + generated so far
    output_tokens: int  # generated so far
    max_new_tokens: int  # the request's output limit
    verify_passes: int  # target passes after prefill used so far by this request
    batch_size: int = 1  # requests in the coming engine step (1: single stream)
    step_cost: StepCost | None = None  # the server's cost of a step, when it knows one


def remaining_tokens(state: PolicyState) -> int:
    """Tokens the request may still emit."""
    return max(0, state.max_new_tokens - state.output_tokens)


def useful_tau(state: PolicyState, tau: int) -> int:
    """Clip a draft length to what can still be used: a cycle emits at most ``tau + 1``
    (= ``max(0, min(tau, remaining_tokens(state) - 1))``, on the simulator's hot path)."""
    room = state.max_new_tokens - state.output_tokens - 1
    if tau > room:
        tau = room
    return tau if tau > 0 else 0


def expected_tokens(survival: list[float], tau: int) -> float:
    """E[tokens per cycle] for draft length ``tau``: 1 + sum_k P(accepted >= k).

    ``survival[k-1]`` is P(the first k drafted tokens are all accepted).
    """
    return 1.0 + math.fsum(survival[:tau])


def tau_for_need(survival: list[float], need: float, cap: int) -> int:
    """The smallest tau <= cap whose expected tokens per cycle reach ``need`` (cap if none)."""
    for tau in range(cap + 1):
        if expected_tokens(survival, tau) >= need:
            return tau
    return cap


class Policy:
    """Base class: a fixed draft length (``fixed:tau=N``). Subclasses override the hooks."""

    name = "fixed"

    def __init__(self, tau: int = 4, tau_by_batch: str = "") -> None:
        _check_int(self.name, "tau", tau, 0)
        self.tau = tau
        self.tau_by_batch = parse_tau_by_batch(self.name, tau_by_batch)

    def params(self) -> dict[str, Any]:
        """The parameters, as written into a trace's run metadata."""
        out: dict[str, Any] = {"tau": self.tau}
        if self.tau_by_batch:
            out["tau_by_batch"] = ",".join(f"{b}:{t}" for b, t in self.tau_by_batch)
        return out

    def tau_for_batch(self, batch_size: int) -> int:
        """The draft length at this batch size: the tau of the largest ``tau_by_batch``
        threshold <= ``batch_size`` (``tau`` below the smallest one, or without a table)."""
        tau = self.tau
        for threshold, t in self.tau_by_batch:
            if threshold <= batch_size:
                tau = t
        return tau

    def fork(self) -> Policy:
        """This policy for one request among concurrent ones: its own per-request state, the
        run-level knowledge shared (see the module docstring). Stateless policies: a copy."""
        return copy.copy(self)

    def plan_batch(self, members: Sequence[Policy], states: Sequence[PolicyState]) -> list[int]:
        """Draft lengths for one engine step: ``members[i]`` is the fork of row ``i`` (asked
        on the run's policy). Default: every fork's own ``next_tau``."""
        return [m.next_tau(s) for m, s in zip(members, states, strict=True)]

    def spec(self) -> str:
        """The spec string that rebuilds this policy with :func:`make_policy`."""
        items = ",".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}:{items}" if items else self.name

    def reset(self, request_id: int | str) -> None:
        """A new request starts (per-request state is cleared; learned estimates are kept)."""

    def budget_exhausted(self, state: PolicyState) -> bool:
        """True when the request may not run another verify pass: it must end now (truncated)."""
        return False

    def next_tau(self, state: PolicyState) -> int:
        """Tokens to draft in the coming cycle; 0 = a target-only step."""
        tau = self.tau_for_batch(state.batch_size) if self.tau_by_batch else self.tau
        room = state.max_new_tokens - state.output_tokens - 1  # useful_tau, inlined
        if tau > room:
            tau = room
        return tau if tau > 0 else 0

    def keep_drafting(self, position: int, draft_prob: float) -> bool:
        """Asked inside a cycle after drafting position ``position`` (0-based) with the draft's
        probability of its own token; False stops drafting early (the ``confidence`` policy)."""
        return True

    def observe(self, cycle: CycleRecord) -> None:
        """The outcome of the cycle just run."""

    @property
    def is_static(self) -> bool:
        """True when ``next_tau`` depends only on the remaining tokens (simulator fast path)."""
        return type(self) is Policy and not self.tau_by_batch


class HazardEstimate:
    """Censoring-aware per-position acceptance, with exponential forgetting.

    Position i's hazard (P(accept i | positions < i accepted)) = accepted-at-i / cycles that
    reached i with tau >= i: a cycle with tau=4 and all accepted says nothing about position 5.
    Each estimate is shrunk toward the pooled hazard (all positions together) with ``prior_weight``
    pseudo-cycles, so a position never (or rarely) reached carries the pooled rate -- the stated
    extrapolation rule. ``decay`` < 1 forgets old cycles (a window of about 1 / (1 - decay)).
    """

    def __init__(
        self,
        positions: int,
        decay: float = 0.98,
        prior_alpha: float = 0.5,
        prior_weight: float = 2.0,
    ) -> None:
        self.positions = positions
        self.decay = decay
        self.prior_alpha = prior_alpha
        self.prior_weight = prior_weight
        self.reached = [0.0] * positions  # counts in units of self._unit
        self.accepted = [0.0] * positions
        self._unit = 1.0

    def update(self, tau: int, accepted: int) -> None:
        """Count one cycle that drafted ``tau`` tokens and accepted a prefix of ``accepted``."""
        if tau <= 0:
            return
        if self.decay < 1.0:
            # Forgetting: rather than shrinking every count, new counts weigh 1/decay more.
            self._unit /= self.decay
            if self._unit > 1e100:  # renormalise long before overflow
                self.reached = [r / self._unit for r in self.reached]
                self.accepted = [a / self._unit for a in self.accepted]
                self._unit = 1.0
        n, w = min(tau, self.positions), self._unit
        for i in range(min(accepted + 1, n)):  # positions 1..accepted+1 were reached (if drafted)
            self.reached[i] += w
        for i in range(min(accepted, n)):
            self.accepted[i] += w

    def hazards(self, prior: Sequence[float] | None = None) -> list[float]:
        """Per-position conditional acceptance estimates (position 1 first), each shrunk toward
        the pooled hazard -- or toward ``prior[i]`` per position when given (a request's own
        estimate shrunk toward the run's)."""
        w = self.prior_weight * self._unit
        if prior is None:
            pooled = (sum(self.accepted) + w * self.prior_alpha) / (sum(self.reached) + w)
            prior = [pooled] * self.positions
        return [
            (a + w * p) / (r + w)
            for a, r, p in zip(self.accepted, self.reached, prior, strict=True)
        ]

    def survival(self, prior: Sequence[float] | None = None) -> list[float]:
        """P(the first k drafted tokens are all accepted), k = 1..positions (the running
        product of :meth:`hazards`; pooled, in one pass: it runs before every cycle)."""
        out, s = [], 1.0
        if prior is not None:
            for h in self.hazards(prior):
                s *= h
                out.append(s)
            return out
        w = self.prior_weight * self._unit
        pooled = (sum(self.accepted) + w * self.prior_alpha) / (sum(self.reached) + w)
        wp = w * pooled
        for a, r in zip(self.accepted, self.reached, strict=True):
            s *= (a + wp) / (r + w)
            out.append(s)
        return out


class CostEstimate:
    """Learned costs of a cycle, with forgetting (``decay``): the draft cost per token (a
    moving average of ``draft_s / tau``) and the verify + overhead cost per number of tokens
    scored (``tau + 1``): a running mean per count seen (an average over the last
    ~1 / (1 - decay) of them), and a decayed least-squares line for counts not seen."""

    def __init__(self, decay: float = 0.98) -> None:
        self.decay = decay
        self.draft_per_token: float | None = None
        # Decayed sums for the verify-cost line y = v0 + v1 * x, x = tokens scored.
        self._w = self._sx = self._sxx = self._sy = self._sxy = 0.0
        # Running mean cost per tokens scored: {tokens: (cost, cycles seen)}.
        self._cost_at: dict[int, tuple[float, int]] = {}

    @property
    def ready(self) -> bool:
        """True once both a draft and a verify cost were measured."""
        return self.draft_per_token is not None and self._w > 0.0

    def line(self) -> tuple[float, float, float]:
        """(mean tokens scored, mean cost, slope >= 0) of the weighted least-squares line."""
        if self._w <= 0.0:
            return 0.0, 0.0, 0.0
        mean_x, mean_y = self._sx / self._w, self._sy / self._w
        var_x = self._sxx / self._w - mean_x * mean_x
        slope = 0.0
        if var_x > 1e-6:
            slope = max(0.0, (self._sxy / self._w - mean_x * mean_y) / var_x)
        return mean_x, mean_y, slope

    def verify_cost(self, tokens_scored: int,
                    line: tuple[float, float, float] | None = None) -> float:
        """Estimated seconds of one verify pass (plus per-cycle overhead) scoring this many
        tokens: the running mean where seen, else the line (``line()``, or ``line`` when the
        caller has it already)."""
        seen = self._cost_at.get(tokens_scored)
        if seen is not None:
            return seen[0]
        mean_x, mean_y, slope = line if line is not None else self.line()
        return max(0.0, mean_y + slope * (tokens_scored - mean_x))

    def verify_costs(self, count: int) -> list[float]:
        """``verify_cost(n)`` for n = 1..count, the line computed once (the adaptive policy
        asks for every candidate before each cycle)."""
        cost_at = self._cost_at
        mean_x, mean_y, slope = self.line()
        out = []
        for n in range(1, count + 1):
            seen = cost_at.get(n)
            out.append(seen[0] if seen is not None else max(0.0, mean_y + slope * (n - mean_x)))
        return out

    def update(self, cycle: CycleRecord) -> None:
        """Learn from one observed cycle (an imported step without its draft/verify split, schema
        v2, teaches no costs)."""
        if cycle.draft_s is None or cycle.verify_s is None or cycle.overhead_s is None:
            return
        if cycle.tau > 0:
            per_token = cycle.draft_s / cycle.tau
            d = self.draft_per_token
            self.draft_per_token = per_token if d is None else d + 0.1 * (per_token - d)
        k = self.decay
        x, y = float(cycle.tau + 1), cycle.verify_s + cycle.overhead_s
        cost, n = self._cost_at.get(cycle.tau + 1, (y, 0))
        n += 1
        self._cost_at[cycle.tau + 1] = (cost + max(1.0 / n, 1.0 - k) * (y - cost), n)
        self._w = self._w * k + 1.0
        self._sx = self._sx * k + x
        self._sxx = self._sxx * k + x * x
        self._sy = self._sy * k + y
        self._sxy = self._sxy * k + x * y


def parse_tau_by_batch(policy: str, text: Any) -> list[tuple[int, int]]:
    """``"1:4,4:2,8:0"`` -> ``[(1, 4), (4, 2), (8, 0)]`` (batch-size threshold, tau), sorted by
    threshold; "" -> []. Thresholds >= 1 and distinct, taus >= 0."""
    if not isinstance(text, str):
        raise SpecsimError(f"policy {policy}: tau_by_batch must be a string like '1:4,4:2,8:0', "
                           f"got {text!r}")
    table: dict[int, int] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        b, colon, t = item.partition(":")
        try:
            threshold, tau = int(b), int(t)
        except ValueError:
            threshold = tau = -1
        if not colon or threshold < 1 or tau < 0 or threshold in table:
            raise SpecsimError(f"policy {policy}: tau_by_batch item '{item}': expected "
                               "BATCH:TAU with a distinct batch size >= 1 and tau >= 0")
        table[threshold] = tau
    return sorted(table.items())


def _check_int(policy: str, key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecsimError(f"policy {policy}: {key} must be an integer >= {low}, got {value!r}")


def _check_float(policy: str, key: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecsimError(f"policy {policy}: {key} must be in [{low}, {high}], got {value!r}")
