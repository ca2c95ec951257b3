"""Draft-length policies, shared by the live decoder and the simulator: the interface (what a
policy sees before a cycle and what it answers), the library of policies (fixed, adaptive,
learning ones, budgets) with make_policy to build one from its NAME:key=value spec, and the
batch-wide goodput policy.

Public names load their module on first use (no import at package import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
    from sim.policies.budget import budget_reach, describe, reach
    from sim.policies.library import (
        POLICIES,
        Adaptive,
        BudgetedPolicy,
        Confidence,
        Heuristic,
        Policy,
        PolicyState,
        StepCost,
        TargetOnly,
        build_policy,
        make_policy,
        parse_policy_spec,
        useful_tau,
    )
    from sim.policies.user import is_user_policy, load_user_policy

_EXPORTS = {
    "Adaptive": "sim.policies.library",
    "BudgetedPolicy": "sim.policies.library",
    "Confidence": "sim.policies.library",
    "Heuristic": "sim.policies.library",
    "POLICIES": "sim.policies.library",
    "Policy": "sim.policies.library",
    "PolicyState": "sim.policies.library",
    "StepCost": "sim.policies.library",
    "TargetOnly": "sim.policies.library",
    "budget_reach": "sim.policies.budget",
    "build_policy": "sim.policies.library",
    "describe": "sim.policies.budget",
    "is_user_policy": "sim.policies.user",
    "load_user_policy": "sim.policies.user",
    "make_policy": "sim.policies.library",
    "parse_policy_spec": "sim.policies.library",
    "reach": "sim.policies.budget",
    "useful_tau": "sim.policies.library",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = [
    "POLICIES",
    "Adaptive",
    "BudgetedPolicy",
    "Confidence",
    "Heuristic",
    "Policy",
    "PolicyState",
    "StepCost",
    "TargetOnly",
    "budget_reach",
    "build_policy",
    "describe",
    "is_user_policy",
    "load_user_policy",
    "make_policy",
    "parse_policy_spec",
    "reach",
    "useful_tau",
]
