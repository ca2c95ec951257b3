"""specsim's analysis: metrics, bottleneck diagnosis, planted-bottleneck traces, reports.

Public names are loaded lazily (``from analysis import diagnose`` imports pandas and friends
only then), so ``specsim --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracing.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)


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
