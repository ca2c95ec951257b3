"""What-if sweeps: a scenario simulated over the cartesian grid of some of its keys.

``sweep(base, {"policy.tau": [1, 2, 4], "latency.hardware": ["A100", "H100"]})`` runs the six
points in parallel: a pool of ``jobs`` worker processes (default ``os.cpu_count()``), or a Dask
cluster with ``cluster="local"`` / ``"tcp://HOST:PORT"`` -- :mod:`sim.execution` runs the same
plain function over the same points under each, so the table does not depend on where it ran.
Every point runs with the same seed -- the base scenario's ``[workload] seed`` -- so points
differ only by the keys varied (common random numbers), and the table is the same whatever
``jobs`` is. With ``[sim] replications`` > 1 each point is :func:`sim.replicate.replicate`'s.

A point *meets the SLO* when its p95 latency is at most ``slo_p95_ms`` (always, without one) --
with intervals, when the SLO is within reach of its p95 interval (``meets_slo_surely``: the whole
interval is below it);
it is *within budget* when no request was cut short by the verify budget and the mean / max
verify passes per request respect ``[budget]``. ``feasible`` is both and not ``overloaded`` (a
queue that grows without bound has no steady p95: such a point is never feasible, never best).

With ``intervals`` > 0 (:mod:`sim.intervals`) every point carries ``ci95`` {p50_s, p95_s,
speedup_vs_target_only, throughput_tok_s, ...: [lo, hi]}, ``change`` and ``change_ci95`` against
the base scenario run unchanged (``baseline`` of the result), and ``interval`` (how they were
made). The best point (:func:`pick_best`): among feasible points whose p95 interval overlaps that
of the lowest p95, the lowest p50, then the highest throughput; the others of that set are
``tied`` (indistinguishable on p95 within the noise) and ``best_reason`` says so.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.engine import simulate
from sim.execution import run_grid
from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

TABLE_FORMATS = (".csv", ".parquet")


@dataclass
class WhatIfResult:
    """A sweep's points (grid order), the best feasible point and the flat table."""

    points: list[dict[str, Any]]
    best: dict[str, Any] | None
    table: pd.DataFrame = field(repr=False)
    tied: list[dict[str, Any]] = field(default_factory=list)  # vary of points tied with best
    best_reason: str = ""
    baseline: dict[str, Any] | None = None  # the base scenario's figures, with intervals
    interval: dict[str, Any] | None = None  # sim.intervals.basis: how intervals were made

    def to_dict(self) -> dict[str, Any]:
        """The ``whatif --json`` object: ``points``, ``best``, ``tied``, ``best_reason``,
        ``baseline`` and ``interval``."""
        return {"points": self.points, "best": self.best, "tied": self.tied,
                "best_reason": self.best_reason, "baseline": self.baseline,
                "interval": self.interval}


def parse_value(text: str) -> int | float | bool | str:
    """A command-line value: int, then float, then true/false, else the string itself."""
    for cast in (int, float):
        try:
            return cast(text)  # type: ignore[operator]
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_vary(items: list[str]) -> dict[str, list[Any]]:
    """``["policy.tau=1,2,4", ...]`` -> ``{"policy.tau": [1, 2, 4]}`` (keys in order given)."""
    vary: dict[str, list[Any]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip()
        if not eq or not key or not values.strip():
            raise SpecsimError(f"--vary '{item}': expected KEY=V1,V2,... (e.g. policy.tau=1,2,4)")
        if key in vary:
            raise SpecsimError(f"--vary {key}: given twice")
        parsed = [parse_value(v.strip()) for v in values.split(",") if v.strip()]
        if not parsed:
            raise SpecsimError(f"--vary '{item}': no values")
        vary[key] = parsed
    return vary


def grid(base: Scenario, vary: dict[str, list[Any]]) -> list[tuple[dict[str, Any], Scenario]]:
    """Every point of the cartesian grid with its validated scenario (bad keys fail here)."""
    keys = list(vary)
    for key in keys:
        if not vary[key]:
            raise SpecsimError(f"vary {key}: no values")
    points = []
    for combo in itertools.product(*(vary[k] for k in keys)):
        point = dict(zip(keys, combo, strict=True))
        points.append((point, base.with_overrides(point, where=f"{base.where} with {point}")))
    return points


def sweep(
    base: Scenario,
    vary: dict[str, list[Any]],
    *,
    trace: Trace | None = None,
    slo_p95_ms: float | None = None,
    jobs: int | None = None,
    cluster: Any = None,
    progress: bool = False,
    intervals: int = 0,
) -> WhatIfResult:
    """Simulate every point of the grid of ``vary`` over ``base`` (see the module docstring);
    ``cluster``: None (processes here), ``"local"``, ``"tcp://HOST:PORT"`` or a
    ``distributed.Client``; ``intervals``: draws per point for the 95% intervals (0: none)."""
    if slo_p95_ms is not None and slo_p95_ms <= 0:
        raise SpecsimError(f"slo_p95_ms = {slo_p95_ms}: must be > 0")
    cells = grid(base, vary)
    if any(sc.needs_trace for _, sc in cells) and trace is None:
        raise SpecsimError(f"{base.where}: some keys read from a trace, but no trace was given")
    scenarios = [sc for _, sc in cells]
    bar = _Bar(len(scenarios)) if progress else None
    try:
        runs = run_grid(scenarios, trace, jobs=jobs, cluster=cluster,
                        on_point=bar.advance if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    points = []
    for (vary_point, scenario), (figures, warnings) in zip(cells, runs, strict=True):
        meets = slo_p95_ms is None or figures["latency_s"]["p95"] * 1e3 <= slo_p95_ms
        within = within_budget(scenario, figures)
        overloaded = bool(figures.get("overloaded"))
        points.append(
            {
                "vary": vary_point,
                **figures,
                "meets_slo": bool(meets),
                "within_budget": within,
                "feasible": bool(meets and within and not overloaded),
                "warnings": warnings,
            }
        )
    baseline, how, values = None, None, None
    if intervals:
        baseline, how, values = add_intervals(base, points, trace, intervals, progress=progress)
        if slo_p95_ms is not None:
            for p in points:  # within the noise of the SLO counts as meeting it
                ci = (p.get("ci95") or {}).get("p95_s")
                p["meets_slo_surely"] = bool(ci is not None and ci[1] * 1e3 <= slo_p95_ms)
                if ci is not None and ci[0] * 1e3 <= slo_p95_ms and not p["meets_slo"]:
                    p["meets_slo"] = True
                    p["feasible"] = bool(p["within_budget"] and not p["overloaded"])
    best, tied, reason = pick_best(points, values)
    return WhatIfResult(points, best, points_table(points), tied, reason, baseline, how)


def add_intervals(
    base: Scenario,
    points: list[dict[str, Any]],
    trace: Trace | None,
    n: int,
    *,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], list[list[Any]]]:
    """Put ``ci95``, ``change``, ``change_ci95`` and ``interval`` on each point (in place), from
    ``n`` draws of :mod:`sim.intervals`; returns the baseline (``base`` unchanged), the basis
    and each point's draws (for paired comparisons)."""
    from sim.intervals import basis, brief, intervals, make_draws, run_draws

    seed = base.workload.seed
    draws = make_draws(base, trace, n, seed=seed)
    how = basis(trace, n)
    bar = _Bar(len(points) + 1, "what-if intervals") if progress else None
    try:
        base_est = brief(simulate(base, trace, seed=seed).figures)
        base_draws = run_draws(draws)
        if bar is not None:
            bar.advance()
        baseline = {**base_est, **intervals(base_est, base_draws)}
        per_point = []
        for p in points:
            est = brief(p)
            values = run_draws(draws, p["vary"])
            per_point.append(values)
            p.update(intervals(est, values, base_est, base_draws))
            p["interval"] = how
            if bar is not None:
                bar.advance()
    finally:
        if bar is not None:
            bar.close()
    return baseline, how, per_point


def pick_best(
    points: list[dict[str, Any]], draws: list[list[Any]] | None = None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
    """The best feasible point, the ``vary`` of those indistinguishable from it, and why.

    Among feasible points whose p95 cannot be told from the lowest p95 -- the 95% interval of
    the paired difference (same draws, ``draws[i]`` of point ``i``) reaches 0; without draws,
    the points' own ``ci95.p95_s`` intervals overlap; without intervals, equal -- the lowest p50
    wins, then the highest throughput."""
    from sim.intervals import interval

    feasible = [i for i, p in enumerate(points) if p["feasible"]]
    if not feasible:
        return None, [], "no point is feasible (SLO, budget, or overloaded)"

    def p95(i: int) -> float:
        return float(points[i]["latency_s"]["p95"])

    def band(i: int) -> tuple[float, float]:
        ci = (points[i].get("ci95") or {}).get("p95_s")
        return (float(ci[0]), float(ci[1])) if ci else (p95(i), p95(i))

    low = min(feasible, key=p95)

    def tied_with_low(i: int) -> bool:
        if i == low:
            return True
        if draws is not None:
            diffs = [a["p95_s"] - b["p95_s"] for a, b in zip(draws[i], draws[low], strict=True)
                     if a is not None and b is not None]
            ci = interval(p95(i) - p95(low), diffs)
            if ci is not None:
                return ci[0] <= 0
        return band(i)[0] <= band(low)[1]

    close = [points[i] for i in feasible if tied_with_low(i)]
    best = min(close, key=lambda p: (p["latency_s"]["p50"], -float(p.get("throughput_tok_s") or 0)))
    tied = [p["vary"] for p in close if p is not best]
    if not tied:
        reason = "the lowest p95, clear of the others' intervals" if any(
            "ci95" in points[i] for i in feasible) else "the lowest p95"
    else:
        names = "; ".join(", ".join(f"{k}={v}" for k, v in t.items()) for t in tied)
        reason = (f"no clear best: {len(close)} points are indistinguishable on p95 within the "
                  f"95% intervals ({names} tie with it); of those it has the best p50, then "
                  "throughput")
    return best, tied, reason


def within_budget(scenario: Scenario, figures: dict[str, Any]) -> bool:
    """No request truncated by its budget, and the verify passes within ``[budget]``."""
    b = scenario.budget
    if figures.get("truncated_requests"):
        return False
    if b.max_verify_per_request and figures["verify_passes_max"] > b.max_verify_per_request:
        return False
    mean_budget = b.mean_verify_per_request
    return not (mean_budget and figures["verify_passes_per_request"] > mean_budget * (1 + 1e-9))


def points_table(points: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per point: the varied keys, then every scalar figure (``latency_s.p95``, ...)."""
    rows = []
    for p in points:
        row: dict[str, Any] = dict(p["vary"])
        for key, value in p.items():
            if key in ("vary", "warnings", "acceptance", "interval"):
                continue
            if key in ("ci95", "change_ci95") and isinstance(value, dict):
                for sub, ci in value.items():
                    if isinstance(ci, list) and len(ci) == 2:
                        row[f"{key}.{sub}.lo"], row[f"{key}.{sub}.hi"] = ci
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    if v is None or isinstance(v, int | float | str | bool):
                        row[f"{key}.{sub}"] = v
            elif value is None or isinstance(value, int | float | str | bool):
                row[key] = value
        row["warnings"] = len(p.get("warnings", []))
        rows.append(row)
    table = pd.DataFrame(rows)
    for key in points[0]["vary"] if points else ():
        kinds = {type(p["vary"][key]) for p in points}
        if len(kinds) > 1 and kinds != {int, float}:  # e.g. tau "4" and "auto": one text column
            table[key] = table[key].astype(str)
    return table


def output_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """The table, points and scenario paths that ``--out`` names (see :func:`write_outputs`)."""
    out = Path(out)
    if out.suffix in TABLE_FORMATS:
        stem = out.with_suffix("")
        return (out, stem.with_name(stem.name + ".points.json"),
                stem.with_name(stem.name + ".scenario.toml"))
    if out.suffix:
        raise SpecsimError(f"--out {out}: a directory, or a table ending in .csv or .parquet")
    return out / "whatif.csv", out / "points.json", out / "scenario.toml"


def write_outputs(
    result: WhatIfResult, base: Scenario, out: str | Path, *, force: bool = False
) -> list[Path]:
    """Write the table, the points (JSON) and the resolved base scenario (TOML).

    ``out`` is a directory (``whatif.csv``, ``points.json``, ``scenario.toml`` inside) or a
    table path ending in ``.csv`` / ``.parquet`` (the others go beside it, named after it).
    An existing file is overwritten only with ``force``; files are written 0644.
    """
    from tracing.outputs import claim, publish

    table_path, points_path, scenario_path = paths = output_paths(out)
    for path in paths:
        claim(path, force)
    try:
        table_path.parent.mkdir(parents=True, exist_ok=True)
        if table_path.suffix == ".parquet":
            result.table.to_parquet(table_path, index=False)
        else:
            result.table.to_csv(table_path, index=False)
        points_path.write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
        scenario_path.write_text(base.to_toml())
    except OSError as exc:
        raise SpecsimError(f"--out {out}: cannot write: {exc.strerror}") from None
    for path in paths:
        publish(path)
    return list(paths)


# --- progress ----------------------------------------------------------------------------


class _Bar:
    """Progress over the grid's points on stderr (a bar on a terminal, plain lines piped)."""

    def __init__(self, total: int, what: str = "what-if") -> None:
        from tracing.progress import Bar

        self._bar = Bar(what, total)

    def advance(self) -> None:
        self._bar.advance()

    def close(self) -> None:
        self._bar.close()
