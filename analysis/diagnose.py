"""Name the bottleneck of a speculative-decoding trace, and quantify the fix by simulation.

:func:`diagnose` runs one detector per kind over :func:`analysis.metrics.compute_metrics` and
returns :class:`Finding` objects ordered by severity. Severity is in [0, 1]; level "high" from
0.6, "medium" from 0.3, else "low". With ``whatif=True`` each finding's recommendation is
simulated: ``sim.scenario_from_trace(trace)`` replays the run, ``with_overrides`` applies each
candidate change, and the best candidate (lowest simulated p95) becomes ``predicted``.

Detectors and their thresholds (each fires only past its threshold, and fits need at least
:data:`MIN_FIT_CYCLES` cycles, measured shares :data:`MIN_CYCLES`, so a short or healthy
run -- alpha ~0.8, tau 4, draft at <10% of a target step, flat verify, closed load -- gets
nothing; tests/test_diagnose.py holds both sides):

- ``speculation_not_paying``: estimated service-time speedup over target-only < 0.97.
  severity = 0.6 + 2 * (1 - speedup).
- ``over_speculation``: wasted drafting >= 50% of drafted tokens, mean accepted prefix < 40% of
  tau, and a shorter fixed tau is >= 8% faster on the measured hazard and costs
  (:func:`analysis.metrics.tau_curve`). severity = 0.3 + 1.5 * gain.
- ``draft_bound``: drafting >= 35% of cycle time and a draft step >= 15% of a target step.
  severity = 1.5 * (share - 0.3) + (cost ratio - 0.15).
- ``verify_not_parallel``: the fit verify_s ~ a + b * (tau + 1) has b / (a + b) >= 0.1, R^2 >= 0.3
  and makes a pass at the mean tau >= 25% dearer than a one-token pass. severity = extra / 1.5.
- ``budget_bound``: >= 10% of requests used all ``max_verify`` passes (from the run's policy
  parameters or its scenario), or the mean passes reach 97% of ``mean_verify``.
  severity = 0.3 + 0.7 * share at the cap.
- ``queueing_bound``: p95 of queueing >= 50% of p95 latency. severity = (ratio - 0.3) / 0.6.
- ``long_context_collapse``: acceptance in the longest-context bucket is >= 0.15 lower and
  <= 75% of the shortest one's. severity = 1.2 * relative drop.
- ``suspicious_acceptance``: with logged draft_prob q and target_prob p at temperature > 0,
  accepted tokens exceed E = sum min(1, p/q) over the positions reached by z >= 4 and by >= 10%
  (severity = 0.5 + observed / E - 1); greedy: >= 5% of accepted tokens had p < 0.01, which an
  argmax token hardly ever has (severity 0.5 + 5 * share).

Where each part lives: :class:`Finding` and the thresholds in :mod:`analysis.finding`; the
detectors in :mod:`analysis.detect_cycle` (the cycle's costs and acceptance),
:mod:`analysis.detect_limits` (budget, queueing) and :mod:`analysis.detect_trust` (suspicious
acceptance, unstable timing); the what-if predictions in :mod:`analysis.predict`. This module
orders the detectors and runs them; every name above is importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analysis.detect_cycle import (
    DRAFT_KINDS,
    draft_bound,
    draft_kind,
    long_context,
    not_paying,
    over_speculation,
    verify_not_parallel,
)
from analysis.detect_limits import budget_bound, queueing_bound
from analysis.detect_trust import suspicious, unstable_timing
from analysis.finding import HIGH, MEDIUM, MIN_CYCLES, MIN_FIT_CYCLES, Finding, level_of
from analysis.metrics import compute_metrics
from analysis.predict import WHATIF_DRAWS, WHATIF_MAX_REQUESTS, improves, predict
from tracing import Trace
from tracing.errors import SpecsimError

DETECTORS: dict[str, Callable[[Trace, dict[str, Any]], Finding | None]] = {
    "speculation_not_paying": not_paying,
    "over_speculation": over_speculation,
    "draft_bound": draft_bound,
    "verify_not_parallel": verify_not_parallel,
    "budget_bound": budget_bound,
    "queueing_bound": queueing_bound,
    "long_context_collapse": long_context,
    "suspicious_acceptance": suspicious,
    "unstable_timing": unstable_timing,
}
KINDS: tuple[str, ...] = tuple(DETECTORS)


def diagnose(
    trace: Trace,
    *,
    whatif: bool = True,
    metrics: dict[str, Any] | None = None,
    draws: int | None = None,
) -> list[Finding]:
    """Findings ordered by severity (highest first); ``whatif`` simulates each recommendation
    (``draws`` behind each interval: :data:`WHATIF_DRAWS` by default)."""
    m = metrics if metrics is not None else compute_metrics(trace)
    if m["cycles"] == 0:
        raise SpecsimError(f"{trace.name}: no cycles to diagnose")
    findings = [f for f in (d(trace, m) for d in DETECTORS.values()) if f is not None]
    findings.sort(key=lambda f: -f.severity)
    if whatif:
        predict(trace, findings, draws=draws)
    from analysis.engine_flags import annotate

    annotate(trace, findings)  # llama.cpp's flag names for a llama.cpp trace
    return findings


__all__ = [
    "DETECTORS",
    "DRAFT_KINDS",
    "HIGH",
    "KINDS",
    "MEDIUM",
    "MIN_CYCLES",
    "MIN_FIT_CYCLES",
    "WHATIF_DRAWS",
    "WHATIF_MAX_REQUESTS",
    "Finding",
    "diagnose",
    "draft_kind",
    "improves",
    "level_of",
    "predict",
]
