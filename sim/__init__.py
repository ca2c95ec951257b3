"""specsim's simulator: SimPy replay of speculative decoding under other hardware, draft models,
draft-length policies, budgets and loads. Emits traces in the same schema as live captures."""

from sim.calibrate import Calibration, calibrate, scenario_from_trace
from sim.catalog import CATALOG, Device
from sim.engine import SimResult, run, simulate
from sim.policies import Policy, PolicyState, make_policy
from sim.scenario import Scenario

__all__ = [
    "CATALOG",
    "Calibration",
    "Device",
    "Policy",
    "PolicyState",
    "Scenario",
    "SimResult",
    "calibrate",
    "make_policy",
    "run",
    "scenario_from_trace",
    "simulate",
]
