"""Draft-length policies, shared by the live decoder and the simulator.

Plain Python: no torch, no SimPy. Protocol, per request:

1. ``reset(request_id)`` once when the request starts;
2. before each cycle, ``budget_exhausted(state)``: True means the request has spent its verify
   budget and must END NOW (its output is truncated, like hitting ``max_new_tokens``);
   otherwise ``next_tau(state)`` gives the draft length (0 = a target-only step);
3. inside a cycle, ``keep_drafting(position, draft_prob)`` after each drafted token may stop
   drafting early (the ``confidence`` policy);
4. ``observe(cycle)`` with the outcome -- every observed cycle is one target verify pass.

Budgets are enforced here, so they hold in both live/ and sim/: a policy never lets a request run
a verify pass beyond its allowance. Spec strings: ``NAME[:key=value,...]``; any policy also takes
``max_verify=N`` (hard cap of verify passes per request) and ``mean_verify=X`` (mean passes per
request across the run), which wrap it in :class:`BudgetedPolicy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tracing.errors import SpecsimError
from tracing.schema import CycleRecord


@dataclass(slots=True)
class PolicyState:
    """What a policy may look at before a cycle of one request."""

    request_id: int
    cycle: int  # index of the cycle about to run
    context_tokens: int  # prompt + generated so far
    output_tokens: int  # generated so far
    max_new_tokens: int  # the request's output limit
    verify_passes: int  # target passes after prefill used so far by this request


def remaining_tokens(state: PolicyState) -> int:
    """Tokens the request may still emit."""
    return max(0, state.max_new_tokens - state.output_tokens)


def useful_tau(state: PolicyState, tau: int) -> int:
    """Clip a draft length to what can still be used: a cycle emits at most ``tau + 1``."""
    return max(0, min(tau, remaining_tokens(state) - 1))


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

    def __init__(self, tau: int = 4) -> None:
        _check_int(self.name, "tau", tau, 0)
        self.tau = tau

    def params(self) -> dict[str, Any]:
        """The parameters, as written into a trace's run metadata."""
        return {"tau": self.tau}

    def spec(self) -> str:
        """The spec string that rebuilds this policy with :func:`make_policy`."""
        items = ",".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}:{items}" if items else self.name

    def reset(self, request_id: int) -> None:
        """A new request starts (per-request state is cleared; learned estimates are kept)."""

    def budget_exhausted(self, state: PolicyState) -> bool:
        """True when the request may not run another verify pass: it must end now (truncated)."""
        return False

    def next_tau(self, state: PolicyState) -> int:
        """Tokens to draft in the coming cycle; 0 = a target-only step."""
        return useful_tau(state, self.tau)

    def keep_drafting(self, position: int, draft_prob: float) -> bool:
        """Asked inside a cycle after drafting position ``position`` (0-based) with the draft's
        probability of its own token; False stops drafting early (the ``confidence`` policy)."""
        return True

    def observe(self, cycle: CycleRecord) -> None:
        """The outcome of the cycle just run."""

    @property
    def is_static(self) -> bool:
        """True when ``next_tau`` depends only on the remaining tokens (simulator fast path)."""
        return type(self) in (Policy, TargetOnly)


class TargetOnly(Policy):
    """No speculation: every cycle is one target step."""

    name = "target_only"

    def __init__(self) -> None:
        super().__init__(tau=0)

    def params(self) -> dict[str, Any]:
        return {}


class Heuristic(Policy):
    """transformers' ``num_assistant_tokens_schedule="heuristic"``: start at ``tau``, +2 after a
    fully accepted block, -1 otherwise (floor 1, cap ``max_tau``). The schedule carries over from
    one request to the next, as transformers' does when the assistant is reused."""

    name = "heuristic"

    def __init__(self, tau: int = 5, max_tau: int = 32) -> None:
        _check_int(self.name, "tau", tau, 1)
        _check_int(self.name, "max_tau", max_tau, 1)
        super().__init__(tau=min(tau, max_tau))
        self.initial_tau = self.tau
        self.max_tau = max_tau

    def params(self) -> dict[str, Any]:
        return {"tau": self.initial_tau, "max_tau": self.max_tau}

    def observe(self, cycle: CycleRecord) -> None:
        if cycle.tau <= 0:
            return
        if cycle.accepted == cycle.tau:
            self.tau = min(self.max_tau, self.tau + 2)
        else:
            self.tau = max(1, self.tau - 1)


class Confidence(Policy):
    """Draft up to ``max_tau`` tokens but stop as soon as the draft's probability of its own token
    falls below ``threshold`` (transformers' ``assistant_confidence_threshold``)."""

    name = "confidence"

    def __init__(self, threshold: float = 0.4, max_tau: int = 8) -> None:
        _check_float(self.name, "threshold", threshold, 0.0, 1.0)
        _check_int(self.name, "max_tau", max_tau, 0)
        super().__init__(tau=max_tau)
        self.threshold = float(threshold)

    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "max_tau": self.tau}

    def keep_drafting(self, position: int, draft_prob: float) -> bool:
        return draft_prob >= self.threshold


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

    def hazards(self) -> list[float]:
        """Per-position conditional acceptance estimates (position 1 first)."""
        w = self.prior_weight * self._unit
        pooled = (sum(self.accepted) + w * self.prior_alpha) / (sum(self.reached) + w)
        return [
            (a + w * pooled) / (r + w) for a, r in zip(self.accepted, self.reached, strict=True)
        ]

    def survival(self) -> list[float]:
        """P(the first k drafted tokens are all accepted), k = 1..positions."""
        out, s = [], 1.0
        for h in self.hazards():
            s *= h
            out.append(s)
        return out


class Adaptive(Policy):
    """Pick tau each cycle to maximise expected tokens per second, learned online.

    From ``observe()`` it keeps (with forgetting, ``decay``): a censoring-aware per-position
    acceptance estimate (:class:`HazardEstimate`), the draft cost per token (``draft_s / tau``)
    and the cycle's verify + overhead cost per number of tokens scored (``tau + 1``): a running
    mean per count it has seen (an average over the last ~1 / (1 - decay) of them), and a
    least-squares line for counts it has not. On a GPU the costs are nearly flat, on a CPU they
    follow the kernels' tile sizes (4 tokens may cost less than 2), which no line captures, and
    a line refitted on every noisy cycle swings its decisions. Each cycle it takes the tau in
    ``0..max_tau`` with the highest
    E[tokens](tau) / (tau * draft_per_token + verify(tau + 1)); tau = 0 (target-only steps) wins
    while speculation does not pay. Every ``probe_every`` cycles it drafts one more than the best
    (1 while in fallback), so it sees deeper positions and recovers when acceptance comes back.
    ``budget=N`` (> 0): at most N verify passes per request -- it drafts at least long enough that
    the expected tokens per pass cover what remains, and the request ends when N are spent.
    """

    name = "adaptive"

    def __init__(
        self,
        max_tau: int = 8,
        tau: int = 4,
        decay: float = 0.98,
        probe_every: int = 16,
        budget: int = 0,
    ) -> None:
        _check_int(self.name, "max_tau", max_tau, 1)
        _check_int(self.name, "probe_every", probe_every, 1)
        _check_int(self.name, "budget", budget, 0)
        _check_float(self.name, "decay", decay, 0.5, 1.0)
        super().__init__(tau=min(tau, max_tau))
        self.max_tau, self.decay, self.probe_every, self.budget = (
            max_tau,
            decay,
            probe_every,
            budget,
        )
        self.hazard = HazardEstimate(max_tau, decay)
        self._draft_per_token: float | None = None
        # Decayed sums for the verify-cost line y = v0 + v1 * x, x = tokens scored.
        self._w = self._sx = self._sxx = self._sy = self._sxy = 0.0
        # Running mean cost per tokens scored: {tokens: (cost, cycles seen)}.
        self._cost_at: dict[int, tuple[float, int]] = {}
        self._since_probe = 0

    def params(self) -> dict[str, Any]:
        return {
            "max_tau": self.max_tau,
            "tau": self.tau,
            "decay": self.decay,
            "probe_every": self.probe_every,
            "budget": self.budget,
        }

    def survival(self) -> list[float]:
        """The current estimate of P(first k drafted tokens accepted), k = 1..max_tau."""
        return self.hazard.survival()

    def _verify_line(self) -> tuple[float, float, float]:
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
        tokens: the running mean where seen, else the line (``_verify_line()``, or ``line``
        when the caller has it already)."""
        seen = self._cost_at.get(tokens_scored)
        if seen is not None:
            return seen[0]
        mean_x, mean_y, slope = line if line is not None else self._verify_line()
        return max(0.0, mean_y + slope * (tokens_scored - mean_x))

    def budget_exhausted(self, state: PolicyState) -> bool:
        return (
            bool(self.budget) and state.verify_passes >= self.budget and remaining_tokens(state) > 0
        )

    def next_tau(self, state: PolicyState) -> int:
        cap = useful_tau(state, self.max_tau)
        if self._draft_per_token is None or self._w <= 0.0:
            best = min(self.tau, cap)  # cold start: no costs measured yet
            survival = self.survival()
        else:
            survival = self.survival()
            d = self._draft_per_token
            line = self._verify_line()
            best, best_rate, tokens = 0, -1.0, 1.0
            for t in range(cap + 1):  # tokens = E[tokens per cycle] at draft length t
                if t:
                    tokens += survival[t - 1]
                cost = t * d + self.verify_cost(t + 1, line)
                rate = tokens / max(cost, 1e-12)
                if rate > best_rate:
                    best, best_rate = t, rate
            self._since_probe += 1
            if self._since_probe >= self.probe_every and best < cap:
                self._since_probe = 0
                best += 1
        if self.budget:
            left = self.budget - state.verify_passes
            if left > 0:
                best = max(best, tau_for_need(survival, remaining_tokens(state) / left, cap))
        return best

    def observe(self, cycle: CycleRecord) -> None:
        self.hazard.update(cycle.tau, cycle.accepted)
        if cycle.draft_s is None or cycle.verify_s is None or cycle.overhead_s is None:
            return  # an imported step without its draft/verify split teaches no costs
        if cycle.tau > 0:
            per_token = cycle.draft_s / cycle.tau
            d = self._draft_per_token
            self._draft_per_token = per_token if d is None else d + 0.1 * (per_token - d)
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


class BudgetedPolicy(Policy):
    """Wrap a policy with verify budgets that are never exceeded.

    ``max_verify`` (> 0): a hard cap of verify passes per request. ``mean_verify`` (> 0): a pool --
    each request that starts adds ``mean_verify`` passes and each pass takes one, so after n
    requests at most ``floor(n * mean_verify)`` passes were ever run (a pass is taken when
    ``next_tau`` commits to a cycle, so concurrent requests cannot overdraw it).

    While passes remain, tau is raised (up to ``max_tau``) so that the expected tokens per pass
    cover the tokens still to generate (the inner policy's acceptance estimate when it has one,
    else a pooled one of this wrapper). A request with no pass left ENDS: ``budget_exhausted``
    returns True and its output is truncated there -- the only rule that keeps the budget hard,
    since acceptance is random and no draft length guarantees finishing.
    """

    def __init__(
        self, inner: Policy, *, max_verify: int = 0, mean_verify: float = 0.0, max_tau: int = 16
    ) -> None:
        _check_int(inner.name, "max_verify", max_verify, 0)
        if (
            isinstance(mean_verify, bool)
            or not isinstance(mean_verify, int | float)
            or mean_verify < 0
        ):
            raise SpecsimError(
                f"policy {inner.name}: mean_verify must be >= 0, got {mean_verify!r}"
            )
        self.inner = inner
        self.name = inner.name
        self.tau = inner.tau
        self.max_verify, self.mean_verify, self.max_tau = max_verify, float(mean_verify), max_tau
        self.hazard = HazardEstimate(max_tau, decay=0.99)
        self.started = 0  # requests started (each adds mean_verify to the pool)
        self.used = 0  # passes committed over the run

    def params(self) -> dict[str, Any]:
        out = dict(self.inner.params())
        if self.max_verify:
            out["max_verify"] = self.max_verify
        if self.mean_verify:
            out["mean_verify"] = self.mean_verify
        return out

    def passes_left(self, state: PolicyState) -> float:
        """Verify passes this request may still run (inf when unbudgeted)."""
        left = math.inf
        if self.max_verify:
            left = self.max_verify - state.verify_passes
        if self.mean_verify:
            left = min(left, math.floor(self.mean_verify * self.started + 1e-9) - self.used)
        return left

    def reset(self, request_id: int) -> None:
        self.started += 1
        self.inner.reset(request_id)

    def budget_exhausted(self, state: PolicyState) -> bool:
        if remaining_tokens(state) <= 0:
            return False
        return self.passes_left(state) < 1 or self.inner.budget_exhausted(state)

    def next_tau(self, state: PolicyState) -> int:
        tau = self.inner.next_tau(state)
        left = self.passes_left(state)
        self.used += 1
        if math.isfinite(left) and left >= 1 and not isinstance(self.inner, TargetOnly):
            survival_of = getattr(self.inner, "survival", None)
            survival = survival_of() if callable(survival_of) else self.hazard.survival()
            cap = useful_tau(state, self.max_tau)
            tau = max(tau, tau_for_need(survival, remaining_tokens(state) / left, cap))
        return tau

    def keep_drafting(self, position: int, draft_prob: float) -> bool:
        return self.inner.keep_drafting(position, draft_prob)

    def observe(self, cycle: CycleRecord) -> None:
        self.hazard.update(cycle.tau, cycle.accepted)
        self.inner.observe(cycle)


POLICIES: dict[str, type[Policy]] = {
    "fixed": Policy,
    "target_only": TargetOnly,
    "heuristic": Heuristic,
    "adaptive": Adaptive,
    "confidence": Confidence,
}


def parse_policy_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"fixed:tau=4"`` -> ``("fixed", {"tau": 4})``; values are parsed as int, float or str."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq:
            raise SpecsimError(f"policy '{spec}': expected key=value, got '{item}'")
        value: Any = raw.strip()
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        params[key.strip()] = value
    return name.strip(), params


def build_policy(
    name: str, params: dict[str, Any], *, max_verify: int = 0, mean_verify: float = 0.0
) -> Policy:
    """Build a policy by name; a budget (``max_verify`` / ``mean_verify``, 0 = none) wraps it in
    :class:`BudgetedPolicy`. Unknown names or keys are a SpecsimError."""
    params = dict(params)
    max_verify = int(params.pop("max_verify", max_verify))
    mean_verify = float(params.pop("mean_verify", mean_verify))
    cls = POLICIES.get(name)
    if cls is None:
        raise SpecsimError(f"unknown policy '{name}' (known: {', '.join(sorted(POLICIES))})")
    try:
        policy = cls(**params)
    except TypeError as exc:
        raise SpecsimError(f"policy '{name}': {exc}") from None
    if max_verify or mean_verify:
        policy = BudgetedPolicy(policy, max_verify=max_verify, mean_verify=mean_verify)
    return policy


def make_policy(spec: str) -> Policy:
    """Build a policy from ``NAME[:key=value,...]``; unknown names or keys are a SpecsimError."""
    name, params = parse_policy_spec(spec)
    return build_policy(name, params)


def _check_int(policy: str, key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecsimError(f"policy {policy}: {key} must be an integer >= {low}, got {value!r}")


def _check_float(policy: str, key: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecsimError(f"policy {policy}: {key} must be in [{low}, {high}], got {value!r}")


__all__ = [
    "POLICIES",
    "Adaptive",
    "BudgetedPolicy",
    "Confidence",
    "Heuristic",
    "Policy",
    "PolicyState",
    "TargetOnly",
    "build_policy",
    "expected_tokens",
    "make_policy",
    "parse_policy_spec",
    "remaining_tokens",
    "tau_for_need",
    "useful_tau",
]
