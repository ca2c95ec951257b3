"""The engine: wire a calibrated scenario's workload, acceptance, costs and policy into a SimPy
run.

:func:`run` takes a :class:`sim.calibrate.Calibration` -- what calibration made of a trace (or
of no trace) -- and never reads a trace itself; :func:`simulate` is ``run(calibrate(scenario,
trace))``. One ``numpy.random.Generator`` seeded from the scenario (``[workload] seed``, or ``seed=``)
draws the workload and every acceptance outcome. The result carries the figures
(:mod:`sim.engine.figures`), a trace in the same schema as live captures (``source="sim"``, the
scenario in ``meta.extra["scenario"]``) and warnings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from sim.calibrate import Calibration, calibrate
from sim.engine.baseline import baseline_mean_latency
from sim.engine.drafting import Drafting
from sim.engine.figures import CYCLE_KEYS, Log, compute_figures, is_overloaded
from sim.engine.server import batch_server
from sim.engine.stream import StaticPlan, dynamic_stream_server, finish_stream_log, stream_server
from sim.engine.workload import Closer, Workload, arrivals, build_workload
from sim.models.acceptance import Depths
from sim.models.latency import draw_empirical, draw_speeds
from sim.policies.budget import budget_reach, describe
from sim.scenario import Scenario
from tracing.schema import CYCLE_COLUMNS, REQUEST_COLUMNS, RunMeta
from tracing.trace import Trace


@dataclass
class SimResult:
    """What a simulation returns: the ``simulate --json`` figures, a trace, warnings."""

    figures: dict[str, Any]
    trace: Trace
    warnings: list[str] = field(default_factory=list)


def simulate(
    scenario: Scenario,
    trace: Trace | None = None,
    *,
    seed: int | None = None,
    progress: bool = False,
) -> SimResult:
    """Run one replication of ``scenario`` (``trace`` feeds its "trace" keys, through
    :func:`sim.calibrate.calibrate`)."""
    return run(calibrate(scenario, trace), seed=seed, progress=progress)


def run(cal: Calibration, *, seed: int | None = None, progress: bool = False) -> SimResult:
    """Run one replication of a calibrated scenario."""
    scenario = cal.scenario
    rng = np.random.default_rng(scenario.workload.seed if seed is None else seed)
    workload = build_workload(scenario, rng, cal.requests, cal.arrivals)
    model, costs = cal.acceptance, cal.costs
    if scenario.policy.name == "target_only":  # no draft cache to fill: the baseline's prefill
        costs = dataclasses.replace(costs, prefill_s_per_token=costs.target_only_prefill,
                                    prefill_with_draft=False)
    lat = scenario.latency
    own_device = costs.basis in ("trace", "scenario")
    # a trace's slow spells, and its machine's noise, belong to its own device
    if cal.speeds is not None and workload.trace_row is not None:
        workload.speed = cal.speeds[workload.trace_row]
    elif cal.speed_pool is not None and cal.speed_pool.size and own_device:
        run_seed = scenario.workload.seed if seed is None else seed
        workload.speed = draw_empirical(cal.speed_pool, len(workload), run_seed)
    elif lat.speed_cv > 0 and own_device:
        run_seed = scenario.workload.seed if seed is None else seed
        workload.speed = draw_speeds(lat.speed_cv, len(workload), run_seed)
    policy = scenario.make_policy()
    max_batch = scenario.server.max_batch
    notes: list[str] = [costs.shape_note] if costs.shape_note else []
    memory = None
    if costs.pass_model is None and scenario.target.given:
        notes.append("[target] prices passes only on a modelled device ([latency] hardware or "
                     f"profile); these figures use the {costs.basis}'s own costs")
    if costs.pass_model is not None:  # a modelled device: the model must fit it
        from sim.models.memory import check

        lengths = workload.prompt_tokens + workload.output_tokens
        memory = check(costs.pass_model, float(np.mean(lengths)) if len(lengths) else 0.0,
                       int(np.max(lengths)) if len(lengths) else 0)
        note = memory.warning(max_batch)
        if note:
            notes.append(note)
        if memory.fits:  # the server admits no more than the KV cache holds
            max_batch = max(1, min(max_batch, memory.capacity_seqs))

    env = simpy.Environment()
    queue = simpy.Store(env)
    log = Log(len(workload))
    closer = Closer(env, queue, workload, log)
    bar = _Progress(len(workload)) if progress else None

    def on_done() -> None:
        closer.release()
        if bar is not None:
            bar.advance()

    if not workload.closed:
        env.process(arrivals(env, queue, workload, log))
    depths = Depths(model, rng)
    plan = None
    by_position = model.positions is not None and workload.trace_row is not None
    static = policy.is_static and not (model.edges or model.short_proposals or by_position)
    if max_batch == 1 and static:
        plan = StaticPlan.build(workload, costs, policy.tau, depths)
        env.process(stream_server(env, queue, workload, costs, plan, log, on_done))
    elif max_batch == 1:
        drafting = Drafting(policy, model, depths, rng, workload)
        env.process(
            dynamic_stream_server(env, queue, workload, costs, policy, drafting, log, on_done)
        )
    else:
        drafting = Drafting(policy, model, depths, rng, workload)
        env.process(
            batch_server(env, queue, workload, costs, policy, drafting, max_batch, log, on_done)
        )
    try:
        env.run()
    finally:
        if bar is not None:
            bar.close()
    if plan is not None:
        finish_stream_log(log, workload, costs, plan)
    elif max_batch == 1:
        log.fill_stream_ids(costs.overhead_s)
    else:
        log.fill_batch_steps(costs.overhead_s)

    # single stream: one request at a time, served in id order -> rows already grouped
    requests, cycles = _frames(log, workload, grouped=max_batch == 1 and log.served_in_order())
    warnings: list[str] = list(notes)
    overloaded = is_overloaded(
        not workload.closed, log.backlog_at_last_arrival, len(workload), max_batch
    )
    if overloaded:
        warnings.append(
            f"overloaded: {log.backlog_at_last_arrival} requests were still waiting at the last "
            f"arrival -- {_arrival_rate(scenario)} the queue grows "
            "without bound; latency figures depend on how many requests were simulated"
        )
    if log.truncated:
        warnings.append(f"{log.truncated} requests ran out of verify budget and were truncated")
    if cal.hardware_note:
        warnings.append(cal.hardware_note)
    extrapolated = model.extrapolated_from()
    if extrapolated and len(cycles) and int(cycles["tau"].max()) >= extrapolated:
        warnings.append(
            f"acceptance beyond position {extrapolated - 1} is extrapolated (carried from "
            "the last well-estimated position)"
        )
    baseline, baseline_warning = (
        baseline_mean_latency(  # bounded by the same KV capacity as the run
            dataclasses.replace(scenario, server=dataclasses.replace(scenario.server,
                                                                     max_batch=max_batch)),
            workload, costs.for_target_only())
        if scenario.sim.baseline else (None, None)
    )
    if baseline_warning:
        warnings.append(baseline_warning)
    figures = compute_figures(
        {"arrival_s": log.arrival_s, "start_s": log.start_s, "first_token_s": log.first_token_s,
         "end_s": log.end_s, "output_tokens": log.output_tokens,
         "verify_passes": log.verify_passes},  # the requests frame's own arrays
        {k: cycles[k].to_numpy() for k in ("tau", "accepted", "emitted")},
        busy_s=log.busy_s,
        truncated=log.truncated,
        overloaded=overloaded,
        baseline_mean_latency_s=baseline,
        asked_tokens=workload.output_tokens,
    )
    reach = budget_reach(scenario.budget, figures["output_tokens"],
                         int(log.verify_passes.sum()), workload.output_tokens)
    if reach is not None:
        figures["budget"] = reach
        if not reach["feasible"]:
            warnings.append(describe(reach))
    figures["basis"] = costs.basis
    figures["band"] = costs.band
    if costs.pass_model is not None:
        figures["target_shape"] = costs.pass_model.target.to_dict()
        figures["tp"] = costs.pass_model.tp
        if costs.pass_model.tp > 1:
            figures["allreduce_1_token_s"] = costs.pass_model.allreduce_1_token_s()
        figures["stack"] = costs.pass_model.device.framework.name
    if memory is not None:  # a modelled device: does the model fit it, what batch it holds
        figures["memory"] = memory.to_dict()
        figures["fits"] = memory.fits
        figures["max_batch"] = max_batch
    figures["baseline_basis"] = costs.baseline_basis if scenario.sim.baseline else None
    figures["acceptance"] = model.info()
    figures["policy"] = policy.spec()
    figures["seed"] = int(scenario.workload.seed if seed is None else seed)
    meta = RunMeta(
        source="sim",
        target_model=cal.target_model or "simulated target",
        draft_model=scenario.draft.name or cal.draft_model or "simulated draft",
        device=scenario.latency.hardware or scenario.latency.source_hardware or "sim",
        seed=figures["seed"],
        policy=policy.name,
        policy_params=policy.params(),
        extra={"scenario": scenario.to_dict(), "warnings": list(warnings)},
    )
    return SimResult(figures, Trace(meta, requests, cycles), warnings)


def _frames(log: Log, workload: Workload, grouped: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trace's frames, columns named and typed as the schema says (``grouped``: the cycle
    rows already come request by request)."""
    requests = pd.DataFrame(
        {
            "request_id": np.arange(len(workload), dtype=np.int64),
            "arrival_s": log.arrival_s,
            "start_s": log.start_s,
            "first_token_s": log.first_token_s,
            "end_s": log.end_s,
            "prompt_tokens": workload.prompt_tokens.astype(np.int64),
            "output_tokens": log.output_tokens,
            "prefill_s": log.prefill_s,
            "verify_passes": log.verify_passes,
        },
        copy=False,
    )
    cols: dict[str, np.ndarray] = {}
    for key in CYCLE_KEYS:
        parts = log.cycles[key]
        kind = CYCLE_COLUMNS[key][0]
        dtype = np.int64 if kind in ("int", "id") else np.float64  # ids: ints in a simulation
        if parts and isinstance(parts[0], np.ndarray):
            cols[key] = np.concatenate(parts).astype(dtype, copy=False)
        else:
            cols[key] = np.asarray(parts, dtype=dtype)
    cycles = pd.DataFrame(cols, copy=False)  # no block consolidation: a million rows stay cheap
    if any(p is not None for p in log.draft_probs):
        cycles["draft_prob"] = pd.array(log.draft_probs, dtype=_list_dtype())
    # Cycles of a request are contiguous rows in the schema; the batch server interleaves them.
    if not grouped and len(cycles):
        order = np.lexsort((cols["cycle"], cols["request_id"]))
        cycles = cycles.iloc[order].reset_index(drop=True)
    assert list(requests.columns) == [k for k, (_, req) in REQUEST_COLUMNS.items() if req]
    return requests, cycles


def _list_dtype() -> Any:
    import pyarrow as pa

    return pd.ArrowDtype(pa.list_(pa.float64()))


def _arrival_rate(scenario: Scenario) -> str:
    """The arrival rate an overload warning names: the file's, the trace's or rate_per_s."""
    w = scenario.workload
    if w.arrival == "file":
        return f"at the arrival rate of {w.arrivals_file} (rate_scale = {w.rate_scale:g})"
    if w.arrival == "trace":
        return "at the trace's arrival rate"
    return f"at rate_per_s = {w.rate_per_s:g}"


class _Progress:
    """Progress over completed requests on stderr (a bar on a terminal, plain lines piped)."""

    def __init__(self, total: int) -> None:
        from tracing.progress import Bar

        self._bar = Bar("simulating", total)

    def advance(self) -> None:
        self._bar.advance()

    def close(self) -> None:
        self._bar.close()
