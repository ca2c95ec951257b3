"""specsim's analysis: metrics, bottleneck diagnosis, planted-bottleneck traces, reports.

Public names are loaded lazily (``from analysis import diagnose`` imports pandas and friends
only then), so ``specsim --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.diagnose import KINDS, Finding, diagnose
    from analysis.metrics import METRICS, Metric, compute_metrics, tau_curve
    from analysis.planted import PLANTED_KINDS, PlantSpec, healthy_trace, planted_trace

_EXPORTS = {
    "KINDS": "analysis.diagnose",
    "Finding": "analysis.diagnose",
    "diagnose": "analysis.diagnose",
    "METRICS": "analysis.metrics",
    "Metric": "analysis.metrics",
    "compute_metrics": "analysis.metrics",
    "tau_curve": "analysis.metrics",
    "PLANTED_KINDS": "analysis.planted",
    "PlantSpec": "analysis.planted",
    "healthy_trace": "analysis.planted",
    "planted_trace": "analysis.planted",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "KINDS",
    "METRICS",
    "PLANTED_KINDS",
    "Finding",
    "Metric",
    "PlantSpec",
    "compute_metrics",
    "diagnose",
    "healthy_trace",
    "planted_trace",
    "tau_curve",
]
