"""Calibration: a measured trace (or none) and a scenario -> the tables a simulation replays.

The simulator's folder reads in the order data flows::

    trace  ->  sim/calibrate/  ->  sim/engine/core.py (+ sim/engine/server.py, ...)  ->  trace (source="sim")

This package is the ONLY part of the simulator that reads a trace. :func:`calibrate` reads it
once and hands the engine a :class:`Calibration`: the scenario plus its replay tables --

* ``requests`` (:mod:`sim.calibrate.requests`): the trace's lengths and arrivals, arrival order;
* ``acceptance`` (:mod:`sim.calibrate.acceptance`, :mod:`sim.calibrate.positions`): the
  :class:`~sim.models.acceptance.AcceptanceModel` -- hazards (pooled, per context bucket, per request),
  each request's record by output position, the draft's proposal lengths;
* ``costs`` (:mod:`sim.calibrate.costs` fits, :func:`sim.models.latency.resolve_costs` resolves): the
  :class:`~sim.models.latency.CostModel` the servers charge, and ``fitted_latency`` (the fitted
  ``[latency]`` numbers, or None);
* ``speeds``: each trace request's measured speed against the trace's OWN fitted costs
  (``replay_speed``), kept as a factor under any what-if cost change.

The engine (:func:`sim.engine.core.run`), the servers, the workload and the acceptance and cost
models take only a Calibration, never a trace. :func:`scenario_from_trace` (a scenario that
replays a trace's own configuration) lives here too. Later fits from a trace (step costs from
``cycle_s``, a replayed ``batch_size``, a per-pass cost model) belong in this package as well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.calibrate.acceptance import build_acceptance, fit_proposals
from sim.calibrate.arrivals import ArrivalTable, load_arrivals
from sim.calibrate.batching import max_batch_of
from sim.calibrate.costs import fit_latency, trace_speeds
from sim.calibrate.device import load_profile, setup_of
from sim.calibrate.requests import RequestTables
from sim.models.acceptance import MIN_REACHED, AcceptanceModel
from sim.models.latency import CostModel, hardware_note, resolve_costs
from sim.policies.library import POLICIES
from sim.scenario import (
    AcceptanceConfig,
    BudgetConfig,
    DraftConfig,
    LatencyConfig,
    PolicyConfig,
    Scenario,
    ServerConfig,
    WorkloadConfig,
)
from sim.scenario_sections import policy_keys
from tracing.errors import SpecsimError
from tracing.trace import Trace


@dataclass(frozen=True)
class Calibration:
    """A scenario and everything a run of it replays from a trace (see the module docstring)."""

    scenario: Scenario
    acceptance: AcceptanceModel
    costs: CostModel
    requests: RequestTables | None = None  # None: no trace
    fitted_latency: LatencyConfig | None = None
    speeds: np.ndarray | None = None  # per trace request (arrival order), with replay_speed
    speed_pool: np.ndarray | None = None  # the trace's request speeds, speed_model "empirical"
    hardware_note: str | None = None
    target_model: str = ""  # the trace's model names, for the simulated trace's metadata
    draft_model: str = ""
    arrivals: ArrivalTable | None = None  # [workload] arrival = "file"

    def with_scenario(self, scenario: Scenario) -> Calibration:
        """The same tables under another scenario that changes only what the run does with them
        (policy, budget, server, [sim]): no refit."""
        return dataclasses.replace(self, scenario=scenario)


def calibrate(scenario: Scenario, trace: Trace | None = None) -> Calibration:
    """Read ``trace`` once for everything ``scenario`` replays from it."""
    lat = scenario.latency
    fitted = fit_latency(trace) if trace is not None and lat.model == "trace" else None
    setup = setup_of(trace, load_profile(lat.profile) if lat.profile else None)
    costs = resolve_costs(scenario, fitted, setup)
    # Each request's speed factor, measured once against the trace's own costs and kept
    # whatever this scenario changes (sim.calibrate.costs.trace_speeds). The factors are the
    # trace's device's slow spells: a run priced on another device (basis profile / catalog)
    # drops them, and its target-only baseline with it (both take workload.speed).
    own_device = costs.basis in ("trace", "scenario")
    speeds = pool = None
    if lat.replay_speed and trace is not None and len(trace.requests) and own_device:
        speeds = trace_speeds(trace, fitted)
    elif lat.speed_model == "empirical" and trace is not None and len(trace.requests) \
            and own_device:
        pool = trace_speeds(trace, fitted)
    accept_as, accept_from = _draft_of_size(scenario, trace)
    return Calibration(
        scenario=scenario,
        acceptance=build_acceptance(accept_as, accept_from),
        costs=costs,
        requests=RequestTables.from_trace(trace) if trace is not None else None,
        fitted_latency=fitted,
        speeds=speeds,
        speed_pool=pool,
        hardware_note=hardware_note(scenario, fitted),
        target_model=str(trace.meta.target_model or "") if trace is not None else "",
        draft_model=str(trace.meta.draft_model or "") if trace is not None else "",
        arrivals=_arrivals(scenario),
    )


def _draft_of_size(scenario: Scenario, trace: Trace | None
                   ) -> tuple[Scenario, Trace | None]:
    """The scenario and trace acceptance is built from: with ``[draft] n``, the trace's n-gram
    run replayed as ``ngram:n`` over its recorded tokens (:mod:`sim.calibrate.draftreplay`),
    its short proposals refitted on the replay; else the two unchanged."""
    n = scenario.draft.n
    if n is None:
        return scenario, trace
    from sim.calibrate.draftreplay import draft_spec, replay_ngram

    if trace is None or not trace.path:
        raise SpecsimError(f"{scenario.where}: [draft] n replays an n-gram draft over a greedy "
                           "trace's recorded tokens: give a trace file captured with "
                           "--record-tokens")
    kind = draft_spec(str(trace.meta.draft_model or ""))
    if kind is None or kind[0] != "ngram":
        raise SpecsimError(f"{scenario.where}: [draft] n = {n}: the trace's draft is "
                           f"{trace.meta.draft_model!r}, not an n-gram")
    replayed = replay_ngram(trace, trace.path, n)
    none, caps = fit_proposals(replayed)
    draft = dataclasses.replace(scenario.draft, no_proposal_prob=round(none, 6),
                                proposal_caps=[round(p, 6) for p in caps])
    return dataclasses.replace(scenario, draft=draft), replayed


def _arrivals(scenario: Scenario) -> ArrivalTable | None:
    """The arrivals file's requests (relative paths from the scenario file's folder)."""
    w = scenario.workload
    if w.arrival != "file":
        return None
    path = Path(w.arrivals_file)
    if not path.is_absolute() and not scenario.where.startswith("<"):
        beside = Path(scenario.where).parent / path
        path = beside if beside.exists() else path
    return load_arrivals(str(path), w.requests, start_s=w.start_s, rate_scale=w.rate_scale,
                         max_prompt_tokens=w.max_prompt_tokens,
                         max_output_tokens=w.max_output_tokens, where=scenario.where)


def scenario_from_trace(trace: Trace) -> Scenario:
    """A scenario that replays ``trace``'s configuration: its requests (lengths in order and
    arrivals -- closed when each request arrived as the previous one ended), acceptance fitted
    from its cycles ("trace"), latency fitted by least squares with the request noise drawn from
    the trace's own request speeds (``speed_model = "empirical"``), its policy."""
    r = trace.requests.sort_values("arrival_s")
    arrival, end = r["arrival_s"].to_numpy(float), r["end_s"].to_numpy(float)
    latency = np.maximum(end - arrival, 1e-9)
    closed = len(r) <= 1 or bool(
        np.all(np.abs(arrival[1:] - end[:-1]) <= 0.01 * latency[:-1] + 1e-3)
    )
    workload = WorkloadConfig(
        requests=max(1, len(r)),
        prompt_tokens="trace",
        output_tokens="trace",
        arrival="closed" if closed else "trace",
    )
    name = trace.meta.policy if trace.meta.policy in POLICIES else "fixed"
    known = policy_keys(name)
    recorded = dict(trace.meta.policy_params or {})
    params = {k: v for k, v in recorded.items() if k in known}
    if name == "fixed" and "tau" not in params and len(trace.cycles):
        params["tau"] = int(trace.cycles["tau"].max())
    budget = BudgetConfig(  # a BudgetedPolicy records its budget among the policy's parameters
        max_verify_per_request=int(recorded.get("max_verify", 0) or 0),
        mean_verify_per_request=float(recorded.get("mean_verify", 0.0) or 0.0),
    )
    batch = max_batch_of(trace)
    reached_first = int((trace.cycles["tau"] > 0).sum()) if len(trace.cycles) else 0
    imported = (trace.meta.extra or {}).get("imported")
    order_known = not (isinstance(imported, dict) and imported.get("cycle_order") == "unknown")
    if reached_first >= MIN_REACHED:
        # replay by output position needs the steps in order (an engine's histogram has none)
        acceptance = AcceptanceConfig(model="trace", per_request=True, replay=order_known)
    else:  # a target-only capture: nothing to fit, no draft token would be accepted
        acceptance = AcceptanceConfig(model="iid", alpha=0.0)
    # Short proposals (an n-gram draft with no match): told apart from the policy's own
    # choice of fewer tokens by what the policy asked (fixed: its tau; others: re-run).
    draft = DraftConfig()
    if reached_first >= MIN_REACHED:
        none, caps = fit_proposals(trace)
        draft = DraftConfig(
            no_proposal_prob=round(none, 6), proposal_caps=[round(p, 6) for p in caps]
        )
    return Scenario(
        budget=budget,
        workload=workload,
        acceptance=acceptance,
        draft=draft,
        # a replay's request-to-request noise: drawn from the trace's own request speeds
        latency=dataclasses.replace(fit_latency(trace), speed_model="empirical"),
        policy=PolicyConfig(name, params),
        server=ServerConfig(max_batch=batch),
        where=f"scenario from {trace.name}",
    )


__all__ = ["Calibration", "RequestTables", "calibrate", "scenario_from_trace"]
