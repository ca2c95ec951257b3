"""specsim's simulator: SimPy replay of speculative decoding under other hardware, draft models,
draft-length policies, budgets and loads. Emits traces in the same schema as live captures."""

from sim.engine import SimResult, scenario_from_trace, simulate
from sim.hardware import CATALOG, HardwareSpec
from sim.policies import Policy, PolicyState, make_policy
from sim.scenario import Scenario

__all__ = [
    "CATALOG",
    "HardwareSpec",
    "Policy",
    "PolicyState",
    "Scenario",
    "SimResult",
    "make_policy",
    "scenario_from_trace",
    "simulate",
]
