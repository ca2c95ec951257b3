"""``specsim tune``'s computation: every batch size simulated, decided and merged into a schedule.

:func:`tune` runs :func:`sim.sweep.tune.simulate_batch` at each batch size over one set of interval
draws (:func:`sim.sweep.intervals.make_draws`), asks :func:`sim.sweep.tune_decide.decide` for the answer there
and puts beside it its gain over target-only and over the base's own policy (the trace's
setting), each with the 95% interval of the paired draws. See :mod:`sim.sweep.tune` for the method.
"""

from __future__ import annotations

from typing import Any

from sim.scenario import Scenario
from sim.sweep.tune import (
    DRAWS,
    OBJECTIVES,
    Candidate,
    TuneResult,
    calibrations,
    merge,
    own_tau,
    paired_gain,
    simulate_batch,
)
from sim.sweep.tune_decide import decide, p95_interval, slo_class
from tracing.errors import SpecsimError
from tracing.trace import Trace


def tune(
    base: Scenario,
    trace: Trace | None,
    batches: list[int],
    taus: list[int],
    *,
    objective: str = "throughput",
    slo_p95_ms: float | None = None,
    draws: int = DRAWS,
    requests: int | None = None,
    progress: bool = False,
) -> TuneResult:
    """The draft length per batch size of ``base`` (see :mod:`sim.sweep.tune`)."""
    from sim.sweep.intervals import basis, make_draws

    if objective not in OBJECTIVES:
        raise SpecsimError(f"--objective {objective}: one of {', '.join(OBJECTIVES)}")
    if slo_p95_ms is not None and slo_p95_ms <= 0:
        raise SpecsimError(f"--slo-p95-ms {slo_p95_ms:g}: must be > 0")
    if draws < 2:
        raise SpecsimError(f"--intervals {draws}: at least 2 draws (a recommendation needs its "
                           "interval)")
    if 0 not in taus:
        taus = [0, *taus]
    depth = drafted_depth(trace)
    sample = make_draws(base, trace, draws, seed=base.workload.seed)
    cals = calibrations(base, trace, sample)
    bar = _Bar(len(batches) * (draws + 1)) if progress else None
    rows = []
    first: dict[str, Any] = {}
    try:
        for b in batches:
            cands = simulate_batch(base, trace, b, taus, sample, requests=requests, cals=cals,
                                   on_run=bar.advance if bar is not None else None)
            first = first or cands[0].estimate
            rows.append(_row(b, cands, objective, slo_p95_ms, base, depth))
    finally:
        if bar is not None:
            bar.close()
    return TuneResult(objective=objective, batches=rows, schedule=merge(rows),
                      interval=basis(trace, draws), basis=str(first.get("basis") or ""),
                      band=first.get("band"), warnings=_warnings(base, batches, taus, depth, traced=trace is not None),
                      own_policy=base.policy.spec())


def drafted_depth(trace: Trace | None) -> int | None:
    """The deepest draft position the trace measured (its longest draft); None without a trace
    (a scenario's acceptance model covers every position) or without drafts."""
    if trace is None or "tau" not in trace.cycles.columns or trace.cycles.empty:
        return None
    deepest = int(trace.cycles["tau"].max())
    return deepest if deepest > 0 else None


def _row(batch: int, cands: list[Candidate], objective: str, slo: float | None,
         base: Scenario, depth: int | None = None) -> dict[str, Any]:
    """One batch size: the answer, its gains and every candidate's figures."""
    decision = decide(cands, objective, slo, depth)
    by_tau = {c.tau: c for c in cands if c.tau is not None}
    zero, chosen = by_tau[0], by_tau[decision["tau"]]
    own_t = own_tau(base)
    own = by_tau[own_t] if own_t in by_tau else next(c for c in cands if c.tau is None)
    g, ci = (0.0, [0.0, 0.0]) if chosen is zero else paired_gain(objective, chosen, zero)
    g_own, ci_own = (0.0, [0.0, 0.0]) if chosen is own else paired_gain(objective, chosen, own)
    return {
        "batch": batch, "tau": decision["tau"], "gain": g, "ci95": ci,
        "best_tau": decision["best_tau"], "meets_slo": decision["meets_slo"],
        "reason": decision["reason"],
        "vs_own": {"policy": own.label, "gain": g_own, "ci95": ci_own},
        "points": [_point(c, zero, objective, slo) for c in cands],
    }


def _point(c: Candidate, zero: Candidate, objective: str, slo: float | None) -> dict[str, Any]:
    from sim.sweep.intervals import interval

    key = OBJECTIVES[objective]
    values = [d[key] for d in c.draws if d is not None and d.get(key) is not None]
    g, ci = (0.0, [0.0, 0.0]) if c is zero else paired_gain(objective, c, zero)
    return {"tau": c.tau, "policy": c.label,
            "throughput_tok_s": c.estimate.get("throughput_tok_s"),
            "p50_s": c.estimate.get("p50_s"), "p95_s": c.estimate.get("p95_s"),
            "objective_ci95": interval(c.estimate.get(key), values),
            "p95_ci95": p95_interval(c), "gain": g, "gain_ci95": ci,
            "meets_slo": slo_class(c, slo)}


def _warnings(base: Scenario, batches: list[int], taus: list[int],
              depth: int | None = None, traced: bool = False) -> list[str]:
    """Where the figures lean on extrapolation: acceptance beyond the positions the trace
    drafted, step costs beyond a measured batched profile, or no batched profile at all."""
    out = []
    deep = [t for t in taus if depth is not None and t > depth]
    if deep:
        out.append(f"tau {', '.join(map(str, deep))}: beyond the {depth} draft positions the "
                   "trace measured: acceptance there carries the last measured position's on "
                   "(an assumption), so those draft lengths are recommended only when surely "
                   "better than the best within them")
    table = base.latency.batch_verify_table_s
    if not table:
        if traced and any(b > 1 for b in batches) and not (base.latency.hardware
                                                             or base.latency.profile):
            out.append("the trace has no batched profile: a step over B sequences is priced as "
                       "one sequence's pass scoring as many tokens (the trace's own passes, its "
                       "fitted line beyond them)")
        return out
    rows, cols = len(table), len(table[0]) if table[0] else 0
    beyond = [b for b in batches if b > rows]
    if beyond:
        out.append(f"batch {', '.join(map(str, beyond))}: beyond the measured batched profile "
                   f"(batch <= {rows}): those step costs are extrapolated")
    long = [t for t in taus if t + 1 > cols]
    if cols and long:
        out.append(f"tau {', '.join(map(str, long))}: beyond the measured profile ({cols} "
                   "tokens per row): those verify costs are extrapolated")
    return out


class _Bar:
    """A rich progress bar over the simulations (stderr; gone when done)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress = Progress(console=Console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task("tune", total=total)

    def advance(self) -> None:
        self._progress.advance(self._task)

    def close(self) -> None:
        self._progress.stop()


__all__ = ["drafted_depth", "tune"]
