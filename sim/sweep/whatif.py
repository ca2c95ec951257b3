"""What-if sweeps: a scenario simulated over the cartesian grid of some of its keys.

``sweep(base, {"policy.tau": [1, 2, 4], "latency.hardware": ["A100", "H100"]})`` runs the six
points in parallel: a pool of ``jobs`` worker processes (default ``os.cpu_count()``), or a Dask
cluster with ``cluster="local"`` / ``"tcp://HOST:PORT"`` -- :mod:`sim.sweep.execution` runs the same
plain function over the same points under each, so the table does not depend on where it ran.
Every point runs with the same seed -- the base scenario's ``[workload] seed`` -- so points
differ only by the keys varied (common random numbers), and the table is the same whatever
``jobs`` is. With ``[sim] replications`` > 1 each point is :func:`sim.sweep.replicate.replicate`'s.

Each point carries ``incumbent`` (its decision keys are what the base scenario runs now),
``within_budget`` (no request cut short by the verify budget, and the mean / max verify passes
per request respect ``[budget]``), ``meets_slo`` -- ``"yes"`` | ``"within_noise"`` | ``"no"``
(:func:`sim.sweep.decide.slo_verdict`: from its p95 interval with intervals, else the estimate) --
and ``feasible`` (meets it ``"yes"``, within budget, not ``overloaded``: a queue that grows
without bound has no steady p95).

With ``intervals`` > 0 (:mod:`sim.sweep.intervals`) every point carries ``ci95`` {p50_s, p95_s,
speedup_vs_target_only, throughput_tok_s, ...: [lo, hi]}, ``change`` / ``change_ci95`` and
``change_ratio`` / ``change_ratio_ci95`` against the base scenario run unchanged (``baseline``
of the result), and ``interval`` (how they were made).

The best point is :func:`sim.sweep.decide.decide`'s, per condition (the values of the grid's
``workload.*`` keys): ``best_by_condition`` lists them, ``best`` is the first condition's. A
``policy.KEY`` that a varied policy ignores is refused (:func:`check_policy_keys`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.engine.core import simulate
from sim.scenario import Scenario
from sim.sweep.execution import run_grid
from tracing.errors import SpecsimError
from tracing.trace import Trace

TABLE_FORMATS = (".csv", ".parquet")


@dataclass
class WhatIfResult:
    """A sweep's points (grid order), the best point of the first condition, the flat table and
    the best of every condition (:func:`decide_points`)."""

    points: list[dict[str, Any]]
    best: dict[str, Any] | None
    table: pd.DataFrame = field(repr=False)
    tied: list[dict[str, Any]] = field(default_factory=list)  # vary of points tied with best
    best_reason: str = ""
    baseline: dict[str, Any] | None = None  # the base scenario's figures, with intervals
    interval: dict[str, Any] | None = None  # sim.sweep.intervals.basis: how intervals were made
    best_by_condition: list[dict[str, Any]] = field(default_factory=list)
    objective: str = "p95"

    def to_dict(self) -> dict[str, Any]:
        """The ``whatif --json`` object: ``points``, ``best`` (of the first condition),
        ``tied``, ``best_reason``, ``best_by_condition``, ``objective``, ``baseline`` and
        ``interval``."""
        return {"points": self.points, "best": self.best, "tied": self.tied,
                "best_reason": self.best_reason, "best_by_condition": self.best_by_condition,
                "objective": self.objective, "baseline": self.baseline,
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


def check_policy_keys(base: Scenario, vary: dict[str, list[Any]]) -> None:
    """Refuse a varied ``policy.KEY`` for a policy of the grid that ignores it (e.g.
    ``policy.tau`` with ``goodput`` or ``target_only``): its rows would all be the same run."""
    from sim.policies.library import POLICIES
    from sim.policies.user import is_user_policy, load_user_policy
    from sim.scenario import policy_keys

    names = vary.get("policy.name", [base.policy.name])
    for policy in names:
        if is_user_policy(str(policy)):
            load_user_policy(str(policy), POLICIES)
    # goodput takes tau only as its start, before it has learned the step costs: a sweep of
    # it gives the same rows (it chooses each step's tau up to max_tau itself)
    ignored = {"goodput": {"tau"}}
    for key in vary:
        section, _, name = key.partition(".")
        if section != "policy" or name == "name":
            continue
        for policy in names:
            takes = policy_keys(str(policy)) - ignored.get(str(policy), set())
            if name not in takes:
                raise SpecsimError(
                    f"--vary {key}: policy '{policy}' ignores {name} (it takes: "
                    f"{', '.join(sorted(takes)) or 'nothing'}); vary {key} in a separate "
                    "whatif with the policies that use it")


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
    objective: str = "p95",
) -> WhatIfResult:
    """Simulate every point of the grid of ``vary`` over ``base`` (see the module docstring);
    ``cluster``: None (processes here), ``"local"``, ``"tcp://HOST:PORT"`` or a
    ``distributed.Client``; ``intervals``: draws per point for the 95% intervals (0: none);
    ``objective``: what :func:`sim.sweep.decide.decide` ranks by (p95 | p50 | throughput | goodput)."""
    from sim.sweep.decide import check_objective
    from sim.sweep.intervals import brief

    if slo_p95_ms is not None and slo_p95_ms <= 0:
        raise SpecsimError(f"slo_p95_ms = {slo_p95_ms}: must be > 0")
    check_objective(objective, slo_p95_ms)
    check_policy_keys(base, vary)
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
        point = {"vary": vary_point, **figures, "meets_slo": "yes",
                 "within_budget": within_budget(scenario, figures), "feasible": False,
                 # sim.models.memory: weights + KV fit the device(s); a point that does not is never best
                 "fits": bool(figures.get("fits", True)),
                 "incumbent": _is_incumbent(base, vary_point, scenario), "warnings": warnings}
        if slo_p95_ms is not None:
            point["goodput_tok_s"] = brief(figures, slo_p95_ms)["goodput_tok_s"]
        points.append(point)
    baseline, how, values = None, None, None
    if intervals:
        baseline, how, values = add_intervals(base, points, trace, intervals, progress=progress,
                                              slo_p95_ms=slo_p95_ms)
    by_condition = decide_points(points, values, objective=objective, slo_p95_ms=slo_p95_ms)
    first = by_condition[0] if by_condition else {"best": None, "tied": [], "reason": ""}
    return WhatIfResult(points, first["best"], points_table(points), first["tied"],
                        first["reason"], baseline, how, by_condition, objective)


def _is_incumbent(base: Scenario, vary_point: dict[str, Any], scenario: Scenario) -> bool:
    """True when the point's decision keys are what ``base`` runs (the configuration now)."""
    from sim.sweep.decide import split_keys

    _, condition = split_keys(vary_point)
    try:
        return scenario == (base.with_overrides(condition) if condition else base)
    except SpecsimError:
        return False


def decide_points(
    points: list[dict[str, Any]],
    draws: list[list[Any]] | None,
    *,
    objective: str = "p95",
    slo_p95_ms: float | None = None,
) -> list[dict[str, Any]]:
    """:func:`sim.sweep.decide.decide` per condition; sets each point's ``meets_slo`` and
    ``feasible`` (in place) and returns ``best_by_condition``: [{``condition``, ``best`` (the
    point, its ``vary`` without condition keys), ``tied`` (their decision keys), ``reason``,
    ``kept_incumbent``}]."""
    from sim.sweep.decide import decide, group_by_condition, options_from_points, split_keys

    options = options_from_points(points, draws)
    out = []
    for condition, idx in group_by_condition([p["vary"] for p in points]):
        inc = next((k for k, i in enumerate(idx) if points[i].get("incumbent")), None)
        d = decide([options[i] for i in idx], objective=objective, slo_p95_ms=slo_p95_ms,
                   incumbent=inc)
        for k, i in enumerate(idx):
            p = points[i]
            p["meets_slo"] = d.verdicts[k]
            p["feasible"] = bool(d.verdicts[k] == "yes" and p["within_budget"]
                                 and not p.get("overloaded") and p.get("fits", True))
        best = None
        if d.best is not None:
            chosen = points[idx[d.best]]
            best = {**chosen, "vary": split_keys(chosen["vary"])[0]} if condition else chosen
        out.append({"condition": condition, "best": best,
                    "tied": [split_keys(points[idx[k]]["vary"])[0] for k in d.tied],
                    "reason": d.reason, "kept_incumbent": d.kept_incumbent})
    return out


def add_intervals(
    base: Scenario,
    points: list[dict[str, Any]],
    trace: Trace | None,
    n: int,
    *,
    progress: bool = False,
    slo_p95_ms: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[list[Any]]]:
    """Put ``ci95``, ``change``, ``change_ci95``, ``change_ratio``, ``change_ratio_ci95`` and
    ``interval`` on each point (in place), from ``n`` draws of :mod:`sim.sweep.intervals`; returns
    the baseline (``base`` unchanged), the basis and each point's draws (for paired
    comparisons)."""
    from sim.sweep.intervals import basis, brief, intervals, make_draws, run_draws

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
            est = brief(p, slo_p95_ms)
            values = run_draws(draws, p["vary"], slo_p95_ms=slo_p95_ms)
            per_point.append(values)
            p.update(intervals(est, values, base_est, base_draws))
            p["interval"] = how
            if bar is not None:
                bar.advance()
    finally:
        if bar is not None:
            bar.close()
    return baseline, how, per_point


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
