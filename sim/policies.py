"""Draft-length policies, shared by the live decoder and the simulator.

Plain Python: no torch, no SimPy. A policy is asked ``next_tau(state)`` before each cycle and told
the outcome with ``observe(cycle)`` after it. ``tau == 0`` means a target-only step.
"""

from __future__ import annotations

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


class Policy:
    """Base class: a fixed draft length. Subclasses override the hooks they need."""

    name = "fixed"

    def __init__(self, tau: int = 4) -> None:
        if tau < 0:
            raise SpecsimError(f"policy {self.name}: tau must be >= 0, got {tau}")
        self.tau = tau

    def params(self) -> dict[str, Any]:
        """The parameters, as written into a trace's run metadata."""
        return {"tau": self.tau}

    def reset(self, request_id: int) -> None:
        """A new request starts (per-request state is cleared; learned estimates may be kept)."""

    def next_tau(self, state: PolicyState) -> int:
        """Tokens to draft in the coming cycle; 0 = a target-only step."""
        return min(self.tau, max(0, state.max_new_tokens - state.output_tokens - 1))

    def keep_drafting(self, position: int, draft_prob: float) -> bool:
        """Asked inside a cycle after drafting position ``position`` (0-based) with the draft's
        probability of its own token; False stops drafting early (the ``confidence`` policy)."""
        return True

    def observe(self, cycle: CycleRecord) -> None:
        """The outcome of the cycle just run."""


class TargetOnly(Policy):
    """No speculation: every cycle is one target step."""

    name = "target_only"

    def __init__(self) -> None:
        super().__init__(tau=0)

    def params(self) -> dict[str, Any]:
        return {}


POLICIES: dict[str, type[Policy]] = {"fixed": Policy, "target_only": TargetOnly}


def parse_policy_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"fixed:tau=4"`` -> ``("fixed", {"tau": 4})``; values are parsed as int, float or str."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq:
            raise SpecsimError(f"policy '{spec}': expected key=value, got '{item}'")
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        params[key.strip()] = value
    return name.strip(), params


def make_policy(spec: str) -> Policy:
    """Build a policy from ``NAME[:key=value,...]``; unknown names or keys are a SpecsimError."""
    name, params = parse_policy_spec(spec)
    cls = POLICIES.get(name)
    if cls is None:
        raise SpecsimError(f"unknown policy '{name}' (known: {', '.join(sorted(POLICIES))})")
    try:
        return cls(**params)
    except TypeError as exc:
        raise SpecsimError(f"policy '{spec}': {exc}") from None
