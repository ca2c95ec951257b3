"""A diagnosed bottleneck: :class:`Finding`, its severity level, and the thresholds of trust.

Severity is in [0, 1]; level "high" from 0.6, "medium" from 0.3, else "low"
(:func:`level_of`). Fits need at least :data:`MIN_FIT_CYCLES` spec cycles and measured
shares :data:`MIN_CYCLES` cycles before a detector (:mod:`analysis.detect_cycle`,
:mod:`analysis.detect_limits`, :mod:`analysis.detect_trust`) trusts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

HIGH, MEDIUM = 0.6, 0.3
MIN_FIT_CYCLES = 30  # spec cycles before acceptance/cost fits are trusted
MIN_CYCLES = 10  # cycles before measured shares are trusted


def level_of(severity: float) -> str:
    """"high" from 0.6, "medium" from 0.3, else "low"."""
    return "high" if severity >= HIGH else "medium" if severity >= MEDIUM else "low"


@dataclass
class Finding:
    """One diagnosed bottleneck: what, how bad, the numbers behind it, and what to do.

    ``evidence``: the measured numbers the detector used. ``predicted`` (empty without what-if):
    ``overrides`` (the best change, as scenario keys), ``p50_s``, ``p95_s``,
    ``speedup_vs_target_only``, ``tokens_per_cycle``, ``truncated_requests`` of the simulated
    run with it; ``baseline`` (the same figures replaying the trace unchanged); ``alternatives``
    (every change tried); ``improves`` (p95 down >= 1% or fewer truncated requests); ``assumes``
    (overrides applied to baseline and changes alike, e.g. the wanted output length); or just
    ``error`` when the trace could not be replayed.
    """

    kind: str
    severity: float
    title: str
    evidence: dict[str, Any]
    recommendation: str
    predicted: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list, repr=False)
    base_overrides: dict[str, Any] = field(default_factory=dict, repr=False)
    level: str = ""
    engine_flags: list[str] = field(default_factory=list)  # the engine's own flags for it

    def __post_init__(self) -> None:
        self.severity = float(min(1.0, max(0.0, self.severity)))
        self.level = level_of(self.severity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the ``diagnose --json`` finding)."""
        d = asdict(self)
        d.pop("overrides")
        d.pop("base_overrides")
        if not d["engine_flags"]:  # only a llama.cpp trace's findings carry its flags
            d.pop("engine_flags")
        return d


__all__ = ["HIGH", "MEDIUM", "MIN_CYCLES", "MIN_FIT_CYCLES", "Finding", "level_of"]
