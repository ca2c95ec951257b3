"""The draft length per batch size (``specsim tune``): every tau simulated at every batch size.

For each batch size ``B`` the base scenario (a trace's replay, or a scenario file) runs as a
continuous-batching server of ``max_batch = B`` under a closed loop of ``B`` users -- the server
kept full -- once per draft length (``tau = 0`` is target-only) and once under the base's own
policy (the trace's setting). Each configuration runs on the full trace (the estimate) and on the
same ``draws`` of :mod:`sim.sweep.intervals` (a bootstrap resample of the trace's requests, refitted,
under a new seed), so every comparison is paired: the *gain* of tau over target-only -- the
objective's ratio less 1: throughput ``new / old - 1``, a latency ``old / new - 1`` (> 0 helps)
-- has the 95% interval of the draws' paired ratios (on a log scale, as the decision rule's).

The answer at each batch size comes from the one decision rule (:mod:`sim.sweep.decide`, through
:mod:`sim.sweep.tune_decide`): the best tau by the objective among those that meet the SLO,
recommended over target-only only when the paired interval of its gain lies above 0 -- else 0,
speculation does not pay there. Adjacent batch sizes with the
same answer are merged into ranges (:func:`merge`); a batch size between two tuned ones takes
the answer of the one below it (the rule ``fixed:tau_by_batch`` and vLLM's schedule follow).

Calibration is done once per draw (:func:`calibrations`); every batch size and draft length
reuses it (:meth:`Calibration.with_scenario`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

OBJECTIVES = {"throughput": "throughput_tok_s", "p50": "p50_s", "p95": "p95_s"}
DRAWS = 10  # default draws per interval (each is one simulation per configuration)
MIN_WAVES = 8  # simulated requests per batch size: at least this many times the batch
# ... and at least this many: the simulator's own noise (which requests, which acceptance draws)
# then stays well inside the bootstrap's, so a paired interval is as wide as the trace makes it
# (on traces/load's 24-request trace at batch 4: [-3%, +19%] with 32 requests, [+0%, +19%] here)
MIN_REQUESTS = 200
MAX_TAU = 32


def parse_ints(text: str, what: str, low: int) -> list[int]:
    """``"1,2,4"`` or ``"0-8"`` or a mix (``"0-2,4"``) -> sorted distinct ints >= ``low``."""
    out: set[int] = set()
    for item in filter(None, (x.strip() for x in str(text).split(","))):
        lo, dash, hi = item.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise SpecsimError(f"{what} '{text}': '{item}' is not an integer or a range "
                               "A-B") from None
        if a < low or b < a:
            raise SpecsimError(f"{what} '{text}': '{item}': values must be >= {low}, ranges "
                               "ascending")
        out.update(range(a, b + 1))
    if not out:
        raise SpecsimError(f"{what} '{text}': no values")
    return sorted(out)


def parse_batches(text: str) -> list[int]:
    """``--batch 1,2,4,8``: the batch sizes to tune (>= 1)."""
    return parse_ints(text, "--batch", 1)


def parse_taus(text: str) -> list[int]:
    """``--tau 0-8``: the draft lengths tried (0, target-only, is always among them)."""
    taus = parse_ints(text, "--tau", 0)
    if taus[-1] > MAX_TAU:
        raise SpecsimError(f"--tau '{text}': at most {MAX_TAU}")
    return sorted({0, *taus})


def gain(objective: str, new: float | None, old: float | None) -> float | None:
    """How much better ``new`` is than ``old`` on the objective (> 0 helps): throughput
    ``new / old - 1``, latency ``old / new - 1``; None when either is missing or zero."""
    if new is None or old is None or not math.isfinite(new) or not math.isfinite(old):
        return None
    if objective == "throughput":
        return new / old - 1.0 if old > 0 else None
    return old / new - 1.0 if new > 0 else None


@dataclass
class Candidate:
    """One configuration at one batch size: its estimate and its draws' figures."""

    label: str  # "tau=2", or the base's policy spec
    tau: int | None  # None: the base's own policy (not a fixed draft length)
    estimate: dict[str, Any]
    draws: list[dict[str, Any] | None] = field(default_factory=list)


@dataclass
class TuneResult:
    """Per-batch answers, the merged schedule and how the figures were made."""

    objective: str
    batches: list[dict[str, Any]]
    schedule: list[dict[str, Any]]
    interval: dict[str, Any]
    basis: str
    band: Any = None
    warnings: list[str] = field(default_factory=list)
    own_policy: str = ""


def policy_table(tau: int) -> dict[str, Any]:
    """The ``[policy]`` table of a fixed draft length (0: target-only)."""
    return {"name": "target_only"} if tau == 0 else {"name": "fixed", "tau": tau}


def with_policy(scenario: Scenario, table: dict[str, Any]) -> Scenario:
    """``scenario`` with its whole ``[policy]`` table replaced (no stale keys kept)."""
    d = scenario.to_dict()
    d["policy"] = dict(table)
    return Scenario.from_dict(d, where=scenario.where)


def at_batch(scenario: Scenario, batch: int, requests: int | None) -> Scenario:
    """The scenario as a server of ``max_batch = batch`` kept full by ``batch`` closed-loop
    users, with enough requests to reach steady state (:data:`MIN_WAVES`, :data:`MIN_REQUESTS`);
    no separate baseline run."""
    n = requests or max(scenario.workload.requests, MIN_WAVES * batch, MIN_REQUESTS)
    return scenario.with_overrides({"server.max_batch": batch, "workload.concurrency": batch,
                                    "workload.requests": n, "sim.baseline": False})


def calibrations(base: Scenario, trace: Trace | None, draws: list[Any]) -> list[Any]:
    """The calibration of the base (first) and of each draw, made once for every batch size
    and draft length (None where the simulator refused it). Calibration reads only the
    acceptance and latency sections, which :func:`at_batch` and the policy leave alone; a
    workload read from an arrivals file is the exception (it is recalibrated per run)."""
    from sim.calibrate import calibrate

    out: list[Any] = []
    for scenario, data in [(base, trace), *((d.scenario, d.trace) for d in draws)]:
        try:
            out.append(calibrate(scenario, data))
        except SpecsimError:
            out.append(None)
    return out


def _run_configs(scenario: Scenario, trace: Trace | None, cal: Any,
                 tables: list[dict[str, Any]], seed: int) -> list[dict[str, Any] | None]:
    """Each policy table run once on ``scenario`` with calibration ``cal``, brief figures."""
    from sim.calibrate import calibrate
    from sim.engine.core import run
    from sim.sweep.intervals import brief

    try:
        if cal is None or scenario.workload.arrival == "file":
            cal = calibrate(scenario, trace)
    except SpecsimError:
        return [None] * len(tables)
    out: list[dict[str, Any] | None] = []
    for table in tables:
        sc = with_policy(scenario, table) if table else scenario
        try:
            figures = run(cal.with_scenario(sc), seed=seed).figures
        except SpecsimError:
            out.append(None)
            continue
        got = brief(figures)
        got["basis"], got["band"] = figures.get("basis"), figures.get("band")
        out.append(got)
    return out


def simulate_batch(base: Scenario, trace: Trace | None, batch: int, taus: list[int],
                   draws: list[Any], *, requests: int | None = None,
                   cals: list[Any] | None = None,
                   on_run: Callable[[], None] | None = None) -> list[Candidate]:
    """Every tau (and the base's own policy, unless it is one of them) at ``batch``;
    ``cals``: :func:`calibrations` of ``base`` and ``draws`` (made here when None)."""
    own = own_tau(base)
    tables: list[dict[str, Any]] = [policy_table(t) for t in taus]
    labels: list[tuple[str, int | None]] = [(f"tau={t}", t) for t in taus]
    if own is None or own not in taus:
        tables.append({})  # {}: the scenario's own [policy]
        labels.append((base.policy.spec(), None))
    cals = cals if cals is not None else calibrations(base, trace, draws)
    estimates = _run_configs(at_batch(base, batch, requests), trace, cals[0], tables,
                             base.workload.seed)
    if on_run is not None:
        on_run()
    if estimates[0] is None:
        raise SpecsimError(f"{base.where}: the simulator refused batch {batch}")
    per_draw = []
    for d, cal in zip(draws, cals[1:], strict=True):
        per_draw.append(_run_configs(at_batch(d.scenario, batch, requests), d.trace, cal,
                                     tables, d.seed))
        if on_run is not None:
            on_run()
    return [Candidate(label, tau, estimates[i] or {}, [row[i] for row in per_draw])
            for i, (label, tau) in enumerate(labels)]


def own_tau(scenario: Scenario) -> int | None:
    """The fixed draft length of the scenario's own policy (0 for target-only), else None."""
    p = scenario.policy
    if p.name == "target_only":
        return 0
    params = p.accepted_params()
    if p.name == "fixed" and not params.get("tau_by_batch"):
        return int(params.get("tau", 4))
    return None


def paired_gain(objective: str, new: Candidate, old: Candidate) -> tuple[float | None,
                                                                         list[float] | None]:
    """The gain of ``new`` over ``old`` and its 95% interval from the paired draws (the ratio's
    interval on a log scale, :func:`sim.sweep.intervals.ratio_interval`, less 1)."""
    from sim.sweep.intervals import ratio_interval

    key = OBJECTIVES[objective]
    a, b = new.estimate.get(key), old.estimate.get(key)
    est = gain(objective, a, b)
    da = [None if d is None else d.get(key) for d in new.draws]
    db = [None if d is None else d.get(key) for d in old.draws]
    # throughput: new / old; a latency: old / new
    ci = ratio_interval(a, b, da, db) if objective == "throughput" else ratio_interval(b, a, db, da)
    return est, None if ci is None else [ci[0] - 1.0, ci[1] - 1.0]


def merge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent batch sizes with the same tau as one range ``batch_from..batch_to`` (a range
    ends where the next begins, less 1; the last at the largest batch tuned). A range's
    ``gain`` and ``ci95`` are those of its weakest batch size (the smallest gain), named by
    ``gain_at_batch``."""
    out: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: r["batch"]):
        if out and out[-1]["tau"] == row["tau"]:
            out[-1]["members"].append(row)
            continue
        out.append({"tau": row["tau"], "members": [row]})
    schedule = []
    for i, part in enumerate(out):
        members = part["members"]
        end = out[i + 1]["members"][0]["batch"] - 1 if i + 1 < len(out) else members[-1]["batch"]
        weakest = min(members, key=lambda r: (r["gain"] if r["gain"] is not None else math.inf))
        schedule.append({"batch_from": members[0]["batch"], "batch_to": end, "tau": part["tau"],
                         "gain": weakest["gain"], "ci95": weakest["ci95"],
                         "gain_at_batch": weakest["batch"]})
    return schedule


def tau_at(schedule: list[dict[str, Any]], batch: int) -> int:
    """The schedule's tau at ``batch`` (below the first range: the first range's; above the
    last: the last's)."""
    tau = schedule[0]["tau"] if schedule else 0
    for part in schedule:
        if part["batch_from"] <= batch:
            tau = part["tau"]
    return int(tau)


__all__ = ["DRAWS", "MIN_REQUESTS", "MIN_WAVES", "OBJECTIVES", "Candidate", "TuneResult", "at_batch", "calibrations", "gain",
           "merge",
           "own_tau", "paired_gain", "parse_batches", "parse_taus", "policy_table",
           "simulate_batch", "tau_at", "with_policy"]
