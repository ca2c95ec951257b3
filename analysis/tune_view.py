"""The draft-length schedule in ``diagnose`` and ``report``: a small ``tune`` where it matters.

A trace whose engine steps ran at several batch sizes, or that carries its server's batched
verify profile (the cost of a step at every batch size: a load curve of the costs), has an
answer that changes with the batch size. For such a trace :func:`quick_schedule` runs
:func:`sim.sweep.tune_run.tune` cheaply -- the batch sizes 1, 2, 4, ... up to the server's largest,
draft lengths 0, 1, 2, 4, ... up to the trace's largest, :data:`QUICK_DRAWS` draws -- and says
the command that runs the full one. Any other trace gets None (nothing is simulated).
"""

from __future__ import annotations

import shlex
from typing import Any

from tracing.errors import SpecsimError
from tracing.trace import Trace

QUICK_DRAWS = 4
QUICK_MAX_BATCH = 64
QUICK_MAX_TAU = 8


def schedule_reason(trace: Trace) -> str | None:
    """Why this trace's answer depends on the batch size (None: it does not show)."""
    from sim.calibrate.batching import batch_profile_of

    c = trace.cycles
    if "batch_size" in c.columns and len(c):
        sizes = c["batch_size"].dropna()
        if len(sizes) and sizes.nunique() > 1:
            return f"its engine steps ran at batch sizes {int(sizes.min())}-{int(sizes.max())}"
    profile = batch_profile_of(trace)
    if profile and len(profile) > 1:
        return f"it carries its server's batched step costs (batch 1-{len(profile)})"
    return None


def quick_grid(trace: Trace) -> tuple[list[int], list[int]]:
    """The batch sizes (powers of two up to the server's largest) and draft lengths tried."""
    from sim.calibrate.batching import batch_profile_of, max_batch_of

    top = min(QUICK_MAX_BATCH, max(max_batch_of(trace), len(batch_profile_of(trace)), 1))
    batches = [b for b in (1, 2, 4, 8, 16, 32, 64) if b <= top]
    if batches[-1] != top:
        batches.append(top)
    c = trace.cycles
    most = int(c["tau"].max()) if len(c) else 0
    most = max(1, min(QUICK_MAX_TAU, most))
    taus = sorted({0, most, *(t for t in (1, 2, 4, 8) if t <= most)})
    return batches, taus


def quick_schedule(trace: Trace, base: Any = None, *, draws: int = QUICK_DRAWS) -> dict | None:
    """The schedule of ``trace`` (see the module docstring), or None where it does not apply;
    ``base``: the scenario replaying the trace (``scenario_from_trace(trace)`` when None)."""
    from analysis.engine_config import serve_policy
    from sim.calibrate import scenario_from_trace
    from sim.sweep.tune_run import tune

    why = schedule_reason(trace)
    if why is None:
        return None
    batches, taus = quick_grid(trace)
    base = base if base is not None else scenario_from_trace(trace)
    result = tune(base, trace, batches, taus, draws=draws)
    path = shlex.quote(str(trace.path)) if trace.path else "TRACE"
    command = (f"specsim tune {path} --batch {','.join(map(str, batches))} --tau 0-8 "
               "--intervals 20")
    return {"why": why, "objective": result.objective, "schedule": result.schedule,
            "serve_policy": serve_policy(result.schedule),
            "batches": [{k: row[k] for k in ("batch", "tau", "gain", "ci95", "best_tau",
                                              "reason")} for row in result.batches],
            "interval": result.interval["text"], "warnings": result.warnings,
            "full_command": command}


def schedule_or_warning(trace: Trace, base: Any = None) -> tuple[dict | None, str | None]:
    """:func:`quick_schedule`, a refusal of the simulator turned into a warning."""
    try:
        return quick_schedule(trace, base), None
    except SpecsimError as exc:
        return None, f"draft length per batch size: {exc}"


def schedule_lines(view: dict[str, Any]) -> list[str]:
    """The schedule in words, one line per range, then how to get the full one."""
    lines = [f"Draft length per batch size ({view['objective']}; {view['why']}):"]
    for part in view["schedule"]:
        ci = part["ci95"]
        gain = "" if part["tau"] == 0 else (
            f", {part['gain']:+.0%} over target-only" + (
                f" [{ci[0]:+.0%}, {ci[1]:+.0%}]" if ci else ""))
        what = "target-only (speculation does not surely pay)" if part["tau"] == 0 \
            else f"tau {part['tau']}"
        lines.append(f"  batch {part['batch_from']}-{part['batch_to']}: {what}{gain}")
    lines.append(f"  serve it: --policy {view['serve_policy']}; the full tune and engine "
                 f"configs: {view['full_command']}")
    return lines


__all__ = ["QUICK_DRAWS", "quick_grid", "quick_schedule", "schedule_lines", "schedule_or_warning",
           "schedule_reason"]
