"""The what-if sweeps behind a report (through :mod:`sim`): :func:`run_whatifs` replays the
trace's own configuration and sweeps tau, the verify budget, the hardware, the draft's
acceptance and (where it means something) the draft's depth; :class:`WhatIfConfig` says which
and on how many requests, :class:`WhatIfs` holds the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.metrics import first_requests
from tracing.errors import SpecsimError
from tracing.trace import Trace

if TYPE_CHECKING:
    from sim.sweep.whatif import WhatIfResult

HARDWARE = ("CPU", "L4", "L40S", "A100", "H100", "H200", "B200", "MI300X")


@dataclass
class WhatIfConfig:
    """The sweeps a report runs through the simulator, and on how many requests."""

    taus: tuple[int, ...] = (1, 2, 3, 4, 6, 8)  # fixed-policy draft lengths
    budget_fractions: tuple[float, ...] = (0.5, 0.75, 1.0)  # of the measured verify passes/request
    hardware: tuple[str, ...] = HARDWARE  # catalog names (sim.models.catalog); () = the whole catalog
    draft_scales: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)  # a worse or better draft
    slo_p95_ms: float | None = None  # None: the measured p95 of the simulated requests
    requests: int = 300  # requests simulated per point: the trace's first, by arrival
    jobs: int | None = 1
    seed: int = 0
    intervals: int = 8  # draws behind each point's 95% intervals (sim.sweep.intervals); 0: none


@dataclass
class WhatIfs:
    """Results of :func:`run_whatifs` (each sweep a ``sim.sweep.whatif.WhatIfResult`` or None)."""

    requests: int
    slo_p95_ms: float
    slo_source: str
    measured_p95_ms: float
    measured_latency_s: np.ndarray
    tau: WhatIfResult | None = None
    budget: WhatIfResult | None = None
    hardware: WhatIfResult | None = None
    draft: WhatIfResult | None = None
    depth: WhatIfResult | None = None  # draft depth at a fixed size (analysis.draftdepth)
    depth_note: str = ""  # why the draft-depth sweep was not run (an n-gram draft has no depth)
    replay: dict[str, Any] | None = None  # simulate --json figures of the trace's own config
    replay_latency_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    warnings: list[str] = field(default_factory=list)
    schedule: dict[str, Any] | None = None  # draft length per batch size (analysis.tune_view)

    def best(self) -> dict[str, Any] | None:
        """The best feasible configuration change: of the tau sweep, else of the budget one."""
        for result in (self.tau, self.budget):
            if result is not None and result.best is not None:
                return dict(result.best)
        return None

    @property
    def best_reason(self) -> str:
        """Why :meth:`best` won (which points the noise could not separate from it)."""
        for result in (self.tau, self.budget):
            if result is not None and result.best is not None:
                return result.best_reason
        return ""


def run_whatifs(trace: Trace, config: WhatIfConfig | None = None) -> WhatIfs:
    """Replay the trace's own configuration and sweep tau, the verify budget, the hardware and
    the draft's acceptance (``draft.acceptance_scale``: every acceptance chance scaled).

    Only the first ``config.requests`` requests (by arrival) take part: the base scenario is
    ``sim.scenario_from_trace`` of that part, so the simulator fits and replays a bounded
    amount of data whatever the trace's size. The SLO defaults to their measured p95 ("no
    worse than now").
    A sweep the simulator rejects becomes a warning instead of failing the report.
    """
    from sim import CATALOG, scenario_from_trace, simulate
    from sim.sweep.whatif import sweep

    config = config or WhatIfConfig()
    trace = first_requests(trace, config.requests)
    base = scenario_from_trace(trace)
    batch = _recorded_batch(trace)
    if batch > base.server.max_batch:  # a simulated trace keeps it in its scenario
        base = base.with_overrides({"server.max_batch": batch})
    n = len(trace.requests)
    measured = (trace.requests["end_s"] - trace.requests["arrival_s"]).to_numpy(float)
    measured_p95_ms = float(np.percentile(measured, 95)) * 1e3
    slo = config.slo_p95_ms if config.slo_p95_ms is not None else measured_p95_ms
    out = WhatIfs(
        requests=n,
        slo_p95_ms=slo,
        slo_source="given" if config.slo_p95_ms is not None else "default: the measured p95",
        measured_p95_ms=measured_p95_ms,
        measured_latency_s=measured,
    )
    try:
        replay = simulate(base, trace, seed=config.seed)
        out.replay = replay.figures
        rt = replay.trace.requests
        out.replay_latency_s = (rt["end_s"] - rt["arrival_s"]).to_numpy(float)
        out.warnings += replay.warnings
    except SpecsimError as exc:
        out.warnings.append(f"replay: {exc}")
    passes = float(trace.requests["verify_passes"].mean())
    budgets = sorted({max(1, round(f * passes)) for f in config.budget_fractions})
    hardware = list(config.hardware or CATALOG)  # () = every device of the catalog
    sweeps: list[tuple[str, Any, dict[str, list[Any]]]] = [
        ("tau", _as_fixed(base), {"policy.tau": _with_current_tau(base, config.taus)}),
        ("budget", base, {"budget.max_verify_per_request": [0, *budgets]}),
        ("hardware", base, {"latency.hardware": hardware}),
        ("draft", base, {"draft.acceptance_scale": list(config.draft_scales)}),
    ]
    for name, scenario, vary in sweeps:
        try:
            result = sweep(scenario, vary, trace=trace, slo_p95_ms=slo, jobs=config.jobs,
                           intervals=config.intervals)
        except SpecsimError as exc:
            out.warnings.append(f"what-if {name}: {exc}")
            continue
        setattr(out, name, result)
        seen = {w for p in result.points for w in p.get("warnings", [])}
        out.warnings += [f"what-if {name}: {w}" for w in sorted(seen)]
    from analysis.draftdepth import depth_applies, depth_sweep

    out.depth_note = depth_applies(trace)
    if out.depth_note:
        return out
    try:
        out.depth = depth_sweep(base, trace, slo_p95_ms=slo, jobs=config.jobs)
    except SpecsimError as exc:
        out.warnings.append(f"what-if draft depth: {exc}")
    from analysis.tune_view import schedule_or_warning

    out.schedule, problem = schedule_or_warning(trace, base)
    out.warnings += [problem] if problem else []
    return out


def _recorded_batch(trace: Trace) -> int:
    extra = trace.meta.extra or {}
    server = (extra.get("scenario") or {}).get("server") or {}
    value = extra.get("max_batch") or server.get("max_batch") or 1
    return int(value) if isinstance(value, int | float) else 1


def _with_current_tau(base: Any, taus: tuple[int, ...]) -> list[int]:
    """The taus swept, with the trace's own fixed tau among them: the incumbent a change must
    surely beat (sim.sweep.decide)."""
    tau = base.policy.params.get("tau") if base.policy.name == "fixed" else None
    return sorted(set(taus) | ({int(tau)} if isinstance(tau, int) else set()))


def _as_fixed(base: Any) -> Any:
    return base if base.policy.name == "fixed" else base.with_overrides({"policy.name": "fixed"})


__all__ = ["HARDWARE", "WhatIfConfig", "WhatIfs", "run_whatifs"]
