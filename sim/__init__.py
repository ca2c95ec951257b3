"""specsim's simulator: SimPy replay of speculative decoding under other hardware, draft models,
draft-length policies, budgets and loads. Emits traces in the same schema as live captures.

Public names load their module on first use (``from sim import simulate``), so importing
``sim`` (or ``sim.cli``) never imports numpy, pandas or SimPy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from tracing.lazy import lazy_getattr

if TYPE_CHECKING:
    from sim.calibrate import Calibration, calibrate, scenario_from_trace
    from sim.engine.core import SimResult, run, simulate
    from sim.models.catalog import CATALOG, Device
    from sim.policies.library import Policy, PolicyState, make_policy
    from sim.scenario import Scenario

_EXPORTS = {
    "Calibration": "sim.calibrate",
    "calibrate": "sim.calibrate",
    "scenario_from_trace": "sim.calibrate",
    "CATALOG": "sim.models.catalog",
    "Device": "sim.models.catalog",
    "SimResult": "sim.engine.core",
    "run": "sim.engine.core",
    "simulate": "sim.engine.core",
    "Policy": "sim.policies.library",
    "PolicyState": "sim.policies.library",
    "make_policy": "sim.policies.library",
    "Scenario": "sim.scenario",
}


class _Sim(types.ModuleType):
    """``sim.calibrate`` names both a sub-package and the function it exports: the attribute is
    the function (what ``sim.calibrate(...)`` and ``from sim import calibrate`` gave when this
    package imported it eagerly), whatever imports the sub-package and when."""

    @property
    def calibrate(self) -> Any:
        return importlib.import_module("sim.calibrate").calibrate

    @calibrate.setter
    def calibrate(self, value: Any) -> None:
        """The import system binding the sub-package: ``sys.modules`` has it already."""


sys.modules[__name__].__class__ = _Sim


__getattr__ = lazy_getattr(__name__, _EXPORTS)


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
