"""Draft-length policies, shared by the live decoder and the simulator.

Plain Python: no torch, no SimPy. Protocol, per request:

0. under concurrency (continuous batching), each request gets its own ``fork()`` of the run's
   policy when it is admitted: per-request state (heuristic's schedule, a request's acceptance
   estimate) is the request's own, while run-level knowledge (adaptive's pooled acceptance and
   cost estimates, a ``mean_verify`` budget's pool) stays shared by every fork. A single stream
   may use the run's policy directly (one request at a time);
1. ``reset(request_id)`` once when the request starts;
2. before each cycle, ``budget_exhausted(state)``: True means the request has spent its verify
   budget and must END NOW (its output is truncated, like hitting ``max_new_tokens``);
   otherwise ``next_tau(state)`` gives the draft length (0 = a target-only step);
3. inside a cycle, ``keep_drafting(position, draft_prob)`` after each drafted token may stop
   drafting early (the ``confidence`` policy);
4. ``observe(cycle)`` with the outcome -- every observed cycle is one target verify pass.

Batch-level decisions: a batch server asks the run's policy ``plan_batch(forks, states)`` for the
whole step's draft lengths (each state carries ``batch_size`` and, when the server knows it, a
``step_cost(batch, tau)`` function: seconds of one batch step drafting ``tau`` per row); the
default asks each fork's ``next_tau``. ``fixed:tau_by_batch=1:4,4:2,8:0`` picks tau by the batch
size (vLLM's ``num_speculative_tokens`` per batch size: the tau of the largest threshold <= the
batch size); ``goodput`` (:mod:`sim.policies.goodput`) maximises the batch's expected tokens per second.

Budgets are enforced here, so they hold in both live/ and sim/: a policy never lets a request run
a verify pass beyond its allowance. Spec strings: ``NAME[:key=value,...]``; any policy also takes
``max_verify=N`` (hard cap of verify passes per request) and ``mean_verify=X`` (mean passes per
request across the run), which wrap it in :class:`BudgetedPolicy`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from sim.policies.base import (
    CostEstimate,
    HazardEstimate,
    Policy,
    PolicyState,
    StepCost,
    _check_float,
    _check_int,
    expected_tokens,
    parse_tau_by_batch,
    remaining_tokens,
    tau_for_need,
    useful_tau,
)
from sim.policies.goodput import Goodput
from tracing.errors import SpecsimError
from tracing.schema import CycleRecord


class TargetOnly(Policy):
    """No speculation: every cycle is one target step."""

    name = "target_only"

    def __init__(self) -> None:
        super().__init__(tau=0)

    def params(self) -> dict[str, Any]:
        return {}

    @property
    def is_static(self) -> bool:
        return True


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

    def fork(self) -> Policy:
        """A schedule of the request's own, starting at the initial tau (under batching the
        schedule must not follow whichever request was observed last)."""
        return Heuristic(self.initial_tau, self.max_tau)

    def observe(self, cycle: CycleRecord) -> None:
        tau = cycle.tau
        if tau <= 0:
            return
        if cycle.accepted == tau:  # min(max_tau, tau + 2) / max(1, tau - 1), on the hot path
            up = self.tau + 2
            self.tau = up if up < self.max_tau else self.max_tau
        else:
            down = self.tau - 1
            self.tau = down if down > 1 else 1


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
        self.costs = CostEstimate(decay)
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

    def verify_cost(self, tokens_scored: int,
                    line: tuple[float, float, float] | None = None) -> float:
        """Estimated seconds of one verify pass (plus overhead) scoring this many tokens
        (:meth:`CostEstimate.verify_cost`)."""
        return self.costs.verify_cost(tokens_scored, line)

    def fork(self) -> Policy:
        """The request's own probe counter; the acceptance and cost estimates stay pooled over
        the run (every fork learns into the same :class:`HazardEstimate` and
        :class:`CostEstimate`)."""
        twin = copy.copy(self)
        twin._since_probe = 0
        return twin

    def budget_exhausted(self, state: PolicyState) -> bool:
        return (
            bool(self.budget) and state.verify_passes >= self.budget and remaining_tokens(state) > 0
        )

    def next_tau(self, state: PolicyState) -> int:
        cap = useful_tau(state, self.max_tau)
        costs = self.costs
        if not costs.ready:
            best = min(self.tau, cap)  # cold start: no costs measured yet
            survival = self.survival()
        else:
            survival = self.survival()
            d = costs.draft_per_token
            assert d is not None
            verify = costs.verify_costs(cap + 1)  # verify[t] = verify_cost(t + 1)
            best, best_rate, tokens = 0, -1.0, 1.0
            for t in range(cap + 1):  # tokens = E[tokens per cycle] at draft length t
                if t:
                    tokens += survival[t - 1]
                cost = t * d + verify[t]
                rate = tokens / (cost if cost > 1e-12 else 1e-12)
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
        self.costs.update(cycle)


@dataclass
class _Pool:
    """A ``mean_verify`` budget's run-level counts."""

    started: int = 0  # requests started (each adds mean_verify to the pool)
    used: int = 0  # passes committed over the run


class BudgetedPolicy(Policy):
    """Wrap a policy with verify budgets that are never exceeded.

    ``max_verify`` (> 0): a hard cap of verify passes per request. ``mean_verify`` (> 0): a pool --
    each request that starts adds ``mean_verify`` passes and each pass takes one, so after n
    requests at most ``floor(n * mean_verify)`` passes were ever run (a pass is taken when
    ``next_tau`` commits to a cycle, so concurrent requests cannot overdraw it).

    THE rule (the only thing a budget does): the wrapped policy decides every draft length --
    the wrapper passes it through unchanged, a tau of 0 (a target-only step) included, and never
    drafts more than the wrapped policy asks. A request runs a verify pass only while one is left
    to it (its ``max_verify``, the run's ``mean_verify`` pool); when none is left it ENDS there:
    ``budget_exhausted`` returns True and its output is truncated, like ``max_new_tokens``. So
    ``fixed:tau=8`` under a budget drafts 8 (a budget that is short truncates requests, it does
    not turn every policy into the same long-draft one); whether a budget can be met at all is
    said by :func:`sim.policies.budget.budget_reach` (tokens per request the budget reaches at the
    run's tokens per pass vs what the workload asks).
    """

    def __init__(self, inner: Policy, *, max_verify: int = 0, mean_verify: float = 0.0) -> None:
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
        self.tau_by_batch = inner.tau_by_batch
        self.max_verify, self.mean_verify = max_verify, float(mean_verify)
        self.pool = _Pool()  # the run's mean_verify pool, shared by every fork

    @property
    def started(self) -> int:
        """Requests started over the run (each adds ``mean_verify`` passes to the pool)."""
        return self.pool.started

    @property
    def used(self) -> int:
        """Verify passes committed over the run."""
        return self.pool.used

    def fork(self) -> Policy:
        """The inner policy forked; the budget pool shared."""
        twin = copy.copy(self)
        twin.inner = self.inner.fork()
        return twin

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

    def reset(self, request_id: int | str) -> None:
        self.pool.started += 1
        self.inner.reset(request_id)

    def budget_exhausted(self, state: PolicyState) -> bool:
        if remaining_tokens(state) <= 0:
            return False
        return self.passes_left(state) < 1 or self.inner.budget_exhausted(state)

    def next_tau(self, state: PolicyState) -> int:
        self.pool.used += 1  # the pass this cycle commits to
        return self.inner.next_tau(state)

    def keep_drafting(self, position: int, draft_prob: float) -> bool:
        return self.inner.keep_drafting(position, draft_prob)

    def observe(self, cycle: CycleRecord) -> None:
        self.inner.observe(cycle)


POLICIES: dict[str, type[Policy]] = {
    "fixed": Policy,
    "target_only": TargetOnly,
    "heuristic": Heuristic,
    "adaptive": Adaptive,
    "confidence": Confidence,
    "goodput": Goodput,
}


def parse_policy_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"fixed:tau=4"`` -> ``("fixed", {"tau": 4})``; values are parsed as int, float or str."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    raws: dict[str, str] = {}
    last = ""
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq and last and ":" in item:  # a list value goes on: tau_by_batch=1:4,4:2
            raws[last] += "," + item.strip()
            continue
        if not eq:
            raise SpecsimError(f"policy '{spec}': expected key=value, got '{item}'")
        last = key.strip()
        raws[last] = raw
    for key, raw in raws.items():
        value: Any = raw.strip()
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        params[key] = value
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
    known = policy_keys(cls)
    for key in params:
        if known is not None and key not in known:
            shown = ", ".join(sorted(known | {"max_verify", "mean_verify"}))
            raise SpecsimError(f"policy '{name}': unknown key '{key}' (known: {shown})")
    try:
        policy = cls(**params)
    except TypeError as exc:
        raise SpecsimError(f"policy '{name}': {exc}") from None
    if max_verify or mean_verify:
        policy = BudgetedPolicy(policy, max_verify=max_verify, mean_verify=mean_verify)
    return policy


def policy_keys(cls: type) -> set[str] | None:
    """The keyword parameters a policy class takes (None when it takes ``**kwargs``)."""
    import inspect

    sig = inspect.signature(cls)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n, p in sig.parameters.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def make_policy(spec: str) -> Policy:
    """Build a policy from ``NAME[:key=value,...]`` or a user's ``FILE.py:ClassName``
    (:mod:`sim.policies.user`); unknown names or keys are a SpecsimError."""
    from sim.policies.user import is_user_policy, load_user_policy

    if is_user_policy(spec):
        load_user_policy(spec, POLICIES)
        return build_policy(spec, {})
    name, params = parse_policy_spec(spec)
    return build_policy(name, params)


__all__ = [
    "POLICIES",
    "Adaptive",
    "BudgetedPolicy",
    "Confidence",
    "CostEstimate",
    "Goodput",
    "Heuristic",
    "Policy",
    "PolicyState",
    "StepCost",
    "TargetOnly",
    "build_policy",
    "expected_tokens",
    "make_policy",
    "parse_policy_spec",
    "parse_tau_by_batch",
    "remaining_tokens",
    "tau_for_need",
    "useful_tau",
]
