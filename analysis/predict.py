"""The simulator's answer to each finding's recommendation (``diagnose(whatif=True)``).

:func:`predict` replays the trace (``sim.scenario_from_trace``), simulates each candidate change
of a finding with 95% intervals (:mod:`sim.sweep.intervals`), and picks the one to recommend
by :func:`sim.sweep.decide.decide` against the trace's own configuration; :func:`improves`
says whether an interval of a change lies below 0.
"""

from __future__ import annotations

from typing import Any

from analysis.finding import Finding
from tracing import Trace
from tracing.errors import SpecsimError

WHATIF_MAX_REQUESTS = 300  # the first requests a what-if fits, replays and resamples
WHATIF_DRAWS = 10  # replications + bootstrap resamples behind each interval


def _describe(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in overrides.items())


def _change_text(run: dict[str, Any], key: str) -> str:
    """``p95 3% lower, 95% interval 10% lower to 2% higher``: the change as a ratio (its
    interval on a log scale, :func:`sim.sweep.intervals.ratio_text`)."""
    from sim.sweep.intervals import ratio_text

    return ratio_text(key.removesuffix("_s"), (run.get("change_ratio") or {}).get(key),
                      (run.get("change_ratio_ci95") or {}).get(key))


def _decided_tau(text: str, overrides: dict[str, Any]) -> str:
    """The cost curve's "tau=N is already the best" replaced by the decision's tau when the
    simulation surely finds a better one (the finding and the what-if never disagree)."""
    import re

    tau = overrides.get("policy.tau")
    if tau is None:
        return text
    return re.sub(r"the current draft length \(tau=(\d+)\) is already the model's best on "
                  r"this device; ",
                  lambda m: f"draft tau={tau} instead of {m.group(1)} on this device (the "
                  "simulated decision), or ", text)


def _choose(runs: list[dict[str, Any]], start: dict[str, Any], start_draws: list[Any],
            draws: list[list[Any]], *, budget: bool) -> dict[str, Any]:
    """The run to recommend, by :func:`sim.sweep.decide.decide` (objective p95) with the trace's own
    configuration as the incumbent: a change is named (``improves``) only when its paired
    interval says it helps; when none does, the lowest p95 tried is returned for the text. For
    ``budget_bound`` a change that surely truncates fewer requests (:func:`improves`) comes
    first. Sets each run's ``improves``."""
    from sim.sweep.decide import Option, better, decide

    incumbent = Option({}, start, start_draws)
    options = [Option(r["overrides"], r, d) for r, d in zip(runs, draws, strict=True)]
    for r, o in zip(runs, options, strict=True):
        r["improves"] = (improves(r, truncation=True) if budget
                         else better(o, incumbent, "p95"))
    if budget and any(r["improves"] for r in runs):
        return min((r for r in runs if r["improves"]),
                   key=lambda r: (r["truncated_requests"], r["p95_s"]))
    d = decide([incumbent, *options], incumbent=0)
    if d.best is not None and not d.kept_incumbent:
        return runs[d.best - 1]
    return min(runs, key=lambda r: r["p95_s"])


def improves(run: dict[str, Any], *, truncation: bool = False) -> bool:
    """True when an interval of the change lies below 0: p95 (p50 not surely worse) or p50 (p95
    not surely worse), or -- with ``truncation`` -- the truncated requests."""
    from sim.sweep.intervals import above_zero, below_zero

    ci = run.get("change_ci95") or {}
    p50, p95 = ci.get("p50_s"), ci.get("p95_s")
    faster = (below_zero(p95) and not above_zero(p50)) or (below_zero(p50) and not above_zero(p95))
    fewer = truncation and below_zero(ci.get("truncated_requests"))
    return bool(faster or fewer)


def predict(trace: Trace, findings: list[Finding], *, seed: int = 0, draws: int | None = None) -> None:
    """Fill each finding's ``predicted`` with simulated figures of its candidate changes, each with
    95% intervals (:mod:`sim.sweep.intervals`: replications plus a bootstrap over the trace's
    requests), and quantify its recommendation.

    A candidate equal to the trace's own configuration is never tried. ``improves`` is true only
    when an interval of the change against the replayed baseline lies below 0
    (:func:`improves`); the best candidate is the improving one with the lowest p95 (fewest
    truncated requests first for ``budget_bound``), else the lowest p95 tried, shown as such. A
    trace the simulator cannot replay leaves ``predicted = {"error": ...}``."""
    if not any(f.overrides for f in findings):
        return
    from analysis.metrics import first_requests
    from sim import scenario_from_trace, simulate
    from sim.sweep.intervals import basis, brief, intervals, make_draws, run_draws

    n_draws = WHATIF_DRAWS if draws is None else draws
    trace = first_requests(trace, WHATIF_MAX_REQUESTS)  # fits, replays and resamples stay small
    try:
        base = scenario_from_trace(trace)
        simulate(base, trace, seed=seed)
        samples = make_draws(base, trace, n_draws, seed=seed)
    except SpecsimError as exc:
        for f in findings:
            if f.overrides:
                f.predicted = {"error": str(exc)}
        return
    how = basis(trace, n_draws)
    cache: dict[tuple[tuple[str, Any], ...], tuple[dict[str, Any], list[Any]] | str] = {}

    def run(ov: dict[str, Any]) -> tuple[dict[str, Any], list[Any]] | str:
        key = tuple(sorted(ov.items()))
        if key not in cache:
            try:
                scenario = base.with_overrides(ov) if ov else base
                figs = simulate(scenario, trace, seed=seed).figures
                # how the costs were made (trace / profile / catalog, and a catalog's band)
                est = {**brief(figs), "basis": figs.get("basis"), "band": figs.get("band")}
                cache[key] = (est, run_draws(samples, ov))
            except SpecsimError as exc:
                cache[key] = str(exc)
        return cache[key]

    for f in findings:
        if not f.overrides:
            continue
        start_run = run(f.base_overrides)
        if isinstance(start_run, str):
            f.predicted = {"error": start_run}
            continue
        start_est, start_draws = start_run
        start = {**start_est, **intervals(start_est, start_draws)}
        own = base.with_overrides(f.base_overrides) if f.base_overrides else base
        runs, skipped = [], []
        run_draws_of: list[list[Any]] = []
        for ov in f.overrides:
            merged = {**f.base_overrides, **ov}
            try:
                if base.with_overrides(merged) == own:
                    skipped.append(ov)  # what the trace already runs: never recommended
                    continue
            except SpecsimError:
                continue
            got = run(merged)
            if isinstance(got, dict | tuple) and not isinstance(got, str):
                est, vals = got
                runs.append({"overrides": ov, **est,
                             **intervals(est, vals, start_est, start_draws)})
                run_draws_of.append(vals)
        if not runs:
            f.predicted = {"error": "no candidate change could be simulated", "baseline": start,
                           "interval": how}
            if skipped:
                f.predicted["already_runs"] = skipped
            continue
        budget = f.kind == "budget_bound"
        for r in runs:
            r["improves"] = improves(r, truncation=budget)
        best = _choose(runs, start, start_draws, run_draws_of, budget=budget)
        f.predicted = {**best, "baseline": start, "alternatives": runs, "interval": how}
        if skipped:
            f.predicted["already_runs"] = skipped
        if f.base_overrides:
            f.predicted["assumes"] = f.base_overrides
        figures = f"{_change_text(best, 'p50_s')}, {_change_text(best, 'p95_s')}"
        if f.kind == "suspicious_acceptance":
            f.predicted.pop("improves", None)
            f.recommendation += (f". With the acceptance p/q allow the simulator predicts "
                                 f"{figures}")
            continue
        if best["improves"]:
            f.recommendation = _decided_tau(f.recommendation, best["overrides"])
            f.recommendation += f". Simulated with {_describe(best['overrides'])}: {figures}"
        else:
            f.recommendation += (
                ". The simulator cannot tell any change tried here from the current "
                f"configuration within the noise; the best tried, {_describe(best['overrides'])}, "
                f"gives {figures}")
        speed, speed0 = best["speedup_vs_target_only"], start["speedup_vs_target_only"]
        if speed is not None and speed0:
            f.recommendation += f", speedup x{speed0:.2f} -> x{speed:.2f}"
        if budget:
            f.recommendation += (
                f", truncated requests {start['truncated_requests']:.0f} -> "
                f"{best['truncated_requests']:.0f}")
        f.recommendation += f" ({how['text']})"


__all__ = ["WHATIF_DRAWS", "WHATIF_MAX_REQUESTS", "improves", "predict"]
