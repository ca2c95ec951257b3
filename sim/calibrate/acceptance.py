"""Acceptance from a measured trace: censoring-aware hazards (pooled, per context bucket, per
request), each request's record by output position (:mod:`sim.calibrate.positions`), and how
often the draft proposed fewer tokens than asked -- the tables behind
:class:`sim.models.acceptance.AcceptanceModel`, which samples from them and never reads a trace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.calibrate.positions import UNKNOWN, asked_per_cycle, draft_room, position_records
from sim.calibrate.requests import request_order
from sim.models.acceptance import MAX_POSITIONS, MIN_REACHED, AcceptanceModel, HazardFit
from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace


def per_request_hazards(trace: Trace, pooled: np.ndarray, weight: float = 4.0) -> np.ndarray:
    """Censoring-aware hazards of every request (arrival order), each shrunk toward the pooled
    hazards with ``weight`` pseudo-cycles -- positions a request never reached carry the pooled
    value. Acceptance differs from prompt to prompt; this keeps that spread in a replay."""
    req = trace.requests.iloc[request_order(trace)]
    index = pd.Index(req["request_id"].to_numpy())
    c = trace.cycles
    tau, acc = c["tau"].to_numpy(), c["accepted"].to_numpy()
    rows = index.get_indexer(c["request_id"].to_numpy())
    sel = (tau > 0) & (rows >= 0)
    tau, acc, rows = tau[sel], acc[sel], rows[sel]
    k = MAX_POSITIONS
    reach_hist = np.zeros((len(index), k + 1))
    acc_hist = np.zeros((len(index), k + 1))
    np.add.at(reach_hist, (rows, np.minimum(np.minimum(acc + 1, tau), k)), 1.0)
    np.add.at(acc_hist, (rows, np.minimum(acc, k)), 1.0)
    # #(value >= i) for i = 1..k: reverse cumulative sums along positions
    reached = np.cumsum(reach_hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    accepted = np.cumsum(acc_hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return (accepted + weight * pooled) / (reached + weight)


def fit_acceptance(
    trace: Trace, edges: list[int] | None = None, per_request: bool = False, replay: bool = False
) -> AcceptanceModel:
    """Censoring-aware hazards from a trace's cycles, per context bucket when ``edges`` given,
    per request (shrunk toward the pooled fit) with ``per_request``; ``replay`` also keeps each
    request's recorded depths (implies per_request)."""
    c = trace.cycles
    tau, acc = c["tau"].to_numpy(), c["accepted"].to_numpy()
    pooled = HazardFit.from_cycles(tau, acc)
    if pooled is None:
        raise SpecsimError(
            f"{trace.name}: too few speculative cycles to fit acceptance "
            f"(position 1 needs {MIN_REACHED})"
        )
    if per_request or replay:
        return AcceptanceModel(
            [pooled],
            request_hazards=per_request_hazards(trace, pooled.hazards),
            positions=position_records(trace, request_order(trace)) if replay else None,
        )
    edges = list(edges or [])
    if not edges:
        return AcceptanceModel([pooled])
    bucket = np.searchsorted(np.asarray(edges), c["context_tokens"].to_numpy(), side="right")
    fits = []
    for b in range(len(edges) + 1):
        sel = bucket == b
        fits.append(HazardFit.from_cycles(tau[sel], acc[sel]) or pooled)
    return AcceptanceModel(fits, edges)


def fit_proposals(trace: Trace) -> tuple[float, list[float]]:
    """How often the draft proposed fewer tokens than the policy asked for: (P(none), P(cap = k)
    for k = 1..K-1 among cycles that proposed something), where K is the ask the policy made
    most often (>= 2). What each cycle asked comes from :func:`asked_per_cycle` (the fixed tau,
    or the trace's policy re-run over its cycles); cycles whose ask is unknown count toward
    P(none) only when nothing at all is known (then a tau = 0 cycle counts as no proposal)."""
    c = trace.cycles
    if len(c) == 0:
        return 0.0, []
    c = c.sort_values(["request_id", "cycle"], kind="stable")
    done = c.groupby("request_id", sort=False)["emitted"].cumsum() - c["emitted"]
    room = draft_room(c, trace, done.to_numpy(dtype=np.int64))
    tau = c["tau"].to_numpy(dtype=np.int64)
    asked = asked_per_cycle(trace, c, room)
    # an imported request's first token came from prefill: a 0-second target-only cycle that
    # asked for nothing (schema v2; a measured step never takes 0 s)
    carrier = (tau == 0) & (c["cycle_s"].to_numpy(dtype=float) == 0.0)
    if carrier.any():
        asked = np.where(carrier, UNKNOWN, asked)
        room = np.where(carrier, 0, room)
    if not (tau > 0).any():
        return 0.0, []  # a target-only run: it never asked for a draft
    known = asked != UNKNOWN
    if not known.any():
        tau = tau[room >= 1]
        return (float((tau == 0).mean()) if tau.size else 0.0), []
    asking = known & (asked >= 1)
    if not asking.any():
        return 0.0, []
    none = float((tau[asking] == 0).mean())
    values, counts = np.unique(asked[asked >= 2], return_counts=True)
    if values.size == 0:
        return none, []
    top = int(values[np.argmax(counts)])
    some = tau[(asked == top) & (tau > 0)]
    if some.size == 0:
        return none, []
    caps = [float((some == k).sum() / some.size) for k in range(1, top)]
    while caps and caps[-1] == 0.0:
        caps.pop()
    return none, caps


def build_acceptance(scenario: Scenario, trace: Trace | None = None) -> AcceptanceModel:
    """The acceptance model a scenario asks for (``[draft] alpha`` replaces it by iid)."""
    a, d = scenario.acceptance, scenario.draft
    if d.alpha is not None:
        model = AcceptanceModel([HazardFit(np.full(MAX_POSITIONS, d.alpha), None)])
    elif a.model == "trace":
        if trace is None:
            raise SpecsimError(f'{scenario.where}: [acceptance] model = "trace" needs a trace')
        model = fit_acceptance(trace, a.context_buckets, per_request=a.per_request, replay=a.replay)
    elif a.model == "positional":
        alphas = list(a.alpha) if isinstance(a.alpha, list) else [a.alpha]
        hz = np.full(MAX_POSITIONS, alphas[-1], dtype=float)
        hz[: min(len(alphas), MAX_POSITIONS)] = alphas[:MAX_POSITIONS]
        model = AcceptanceModel([HazardFit(hz, len(alphas) + 1)])
    elif a.by_context:  # i.i.d. within each context range: one bucket per entry
        model = AcceptanceModel(
            [HazardFit(np.full(MAX_POSITIONS, float(alpha)), None) for _, alpha in a.by_context],
            edges=[int(start) for start, _ in a.by_context[1:]])
    else:
        alpha = a.alpha if isinstance(a.alpha, float | int) else a.alpha[0]
        model = AcceptanceModel([HazardFit(np.full(MAX_POSITIONS, float(alpha)), None)])
    model.scale = d.acceptance_scale
    if model.scale != 1.0:
        model.positions = None  # another draft: the trace's record of its text no longer holds
    model.no_proposal_prob = d.no_proposal_prob
    model.proposal_caps = list(d.proposal_caps)
    model.confidence_concentration = a.draft_confidence
    model.__post_init__()
    return model
