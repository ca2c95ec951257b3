"""Costs from a measured trace: the ``[latency]`` numbers by least squares, the verify table
(with a live capture's profile), and each request's speed against the fitted costs.

Part of calibration (:mod:`sim.calibrate`): these are the only readers of a trace's timings. The
cost model they feed (:class:`sim.models.latency.CostModel`, :func:`sim.models.latency.resolve_costs`) never
sees a trace.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.calibrate.batching import batch_table
from sim.calibrate.requests import request_order
from sim.calibrate.steps import batch_step_table, has_split
from sim.models.catalog import device_of
from sim.models.latency import CostModel
from sim.scenario import LatencyConfig
from tracing.errors import SpecsimError
from tracing.trace import Trace

TABLE_MIN_CYCLES = 1  # cycles a draft length needs for its own measured verify cost
PROFILE_PRIOR_CYCLES = 5.0  # weight (in cycles) of the scaled profile beside measured passes
PROFILE_KEY = "verify_profile_s"  # run metadata key written by live.profile


def _lstsq_nonneg(columns: list[np.ndarray], y: np.ndarray) -> list[float]:
    """Least squares y ~ sum(coef_j * col_j), dropping columns whose coefficient comes out
    negative (refit without them): costs never fall as work grows."""
    keep = list(range(len(columns)))
    while keep:
        x = np.column_stack([columns[j] for j in keep])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        bad = [j for j, c in zip(keep, coef, strict=True) if c < 0 and j != 0]
        if not bad:
            out = [0.0] * len(columns)
            for j, c in zip(keep, coef, strict=True):
                out[j] = max(0.0, float(c))
            return out
        keep.remove(bad[0])
    return [0.0] * len(columns)


def fit_latency(trace: Trace) -> LatencyConfig:
    """Fit the ``[latency]`` numbers from a measured trace (least squares).

    draft_step_s: draft_s ~ tau (through the origin); verify: verify_s ~ 1 + tau + context over
    the cycles that drafted (tau / context dropped when constant or when they come out
    negative), and ``verify_table_s`` the mean cost (less its context term) of every tau with
    at least ``TABLE_MIN_CYCLES`` cycles -- the line covers the rest; overhead: the mean
    ``overhead_s``; prefill: prefill_s ~ prompt_tokens (through the origin). The trace's device
    becomes ``source_hardware`` when the catalog knows it; model sizes come from the run
    metadata's ``extra`` (``target_params``, ``target_n_params`` or ``n_params``, ``draft_params`` or
    ``draft_n_params``); ``speed_cv``: the spread of the requests' speeds against these costs
    (:func:`request_speeds`, :func:`speed_spread`); ``batch_verify_table_s``: a server trace's
    batched profile scaled to its passes (:func:`sim.calibrate.batching.batch_table`).
    """
    c, r = trace.cycles, trace.requests
    if len(c) == 0:
        raise SpecsimError(f"{trace.name}: no cycles to fit a latency model from")
    if not has_split(trace):  # only each step's wall time (an imported trace): a cost per step
        return fit_step_latency(trace)
    tau = c["tau"].to_numpy(dtype=float)
    draft = c["draft_s"].to_numpy(dtype=float)
    spec = tau > 0
    draft_step = (
        float((tau[spec] * draft[spec]).sum() / (tau[spec] ** 2).sum()) if spec.any() else 0.0
    )
    verify = c["verify_s"].to_numpy(dtype=float)
    ctx = c["context_tokens"].to_numpy(dtype=float)
    # The line is fitted on multi-token passes only: a 1-token pass is cheaper by a jump (CPUs)
    # that a line through tau = 0 would turn into a steep per-token slope. With one drafted
    # level the slope is 0 (constant tau column dropped).
    fit_on = spec if spec.any() else np.ones_like(spec)
    a, b, k = _fit_verify(tau[fit_on], verify[fit_on], ctx[fit_on])
    table = verify_table(tau.astype(np.int64), verify - k * ctx, profile_of(trace))
    prefill_per_token = _prefill_per_token(r)
    overhead = float(c["overhead_s"].to_numpy(dtype=float).mean())
    fitted = CostModel(a, b, draft_step, prefill_per_token, overhead, k, math.inf, tuple(table))
    return LatencyConfig(
        model="fixed",
        target_step_s=a,
        verify_slope_s=b,
        draft_step_s=draft_step,
        prefill_s_per_token=prefill_per_token,
        overhead_s=overhead,
        context_s_per_token=k,
        verify_table_s=table,
        batch_verify_table_s=batch_table(trace),
        speed_cv=speed_spread(request_speeds(trace, fitted)),
        **_trace_setup(trace),
    )


def _prefill_per_token(r: pd.DataFrame) -> float:
    """Prefill seconds per prompt token: the least-squares slope through 0 (0 without prompts)."""
    prompt = r["prompt_tokens"].to_numpy(dtype=float)
    prefill = r["prefill_s"].to_numpy(dtype=float)
    denom = float((prompt**2).sum())
    return float((prompt * prefill).sum() / denom) if denom else 0.0


def _trace_setup(trace: Trace) -> dict[str, Any]:
    """What a fitted ``[latency]`` records of where it was fitted: the trace's device and the
    model sizes its run metadata names."""
    device_hw = device_of(str(trace.meta.device or ""))
    extra = trace.meta.extra or {}
    return {
        "source_hardware": device_hw.key if device_hw else "",
        "fitted_on": str(trace.meta.device or ""),
        "target_params": float(extra.get("target_params") or extra.get("target_n_params")
                               or extra.get("n_params") or 0.0),
        "draft_params": float(extra.get("draft_params") or extra.get("draft_n_params") or 0.0),
    }


def profile_of(trace: Trace) -> list[float]:
    """The verify-cost profile a live capture measured (seconds of a pass scoring 1, 2, ...
    tokens; see ``live.profile``), or [] when the trace has none."""
    entry = (trace.meta.extra or {}).get(PROFILE_KEY)
    seconds = entry.get("seconds") if isinstance(entry, dict) else None
    if not isinstance(seconds, list) or not seconds:
        return []
    try:
        values = [float(x) for x in seconds]
    except (TypeError, ValueError):
        raise SpecsimError(f"{trace.name}: run metadata {PROFILE_KEY}.seconds must be a "
                           "list of numbers") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise SpecsimError(f"{trace.name}: run metadata {PROFILE_KEY}.seconds must be "
                           "positive numbers")
    return values


def verify_table(tau: np.ndarray, cost: np.ndarray, profile: list[float] | None = None
                 ) -> list[float]:
    """Verify cost per tau.

    Without a profile: the mean ``cost`` of every tau with at least TABLE_MIN_CYCLES cycles (0
    elsewhere: the line covers it), up to the largest such tau; [] when only one tau was.

    With a profile (``profile[n - 1]`` = seconds of an n-token pass, measured outside the
    decode loop): the profile is first scaled to this trace's level (measured seconds over
    profiled seconds, summed over the measured cycles: the decode loop's passes run at longer
    contexts and warmer or colder caches than the profile's), then every tau the profile
    covers gets ``(sum of its measured costs + w * scaled profile) / (its cycles + w)`` with
    ``w = PROFILE_PRIOR_CYCLES``: a draft length measured often keeps its own mean, one
    measured once leans on the profile, one never measured takes the scaled profile.
    """
    counts = np.bincount(tau)
    sums = np.bincount(tau, weights=cost)
    prof = np.asarray(profile or [], dtype=float)
    covered = min(len(prof), len(counts))
    measured = counts[:covered] > 0
    if covered and measured.any():
        scale = sums[:covered][measured].sum() / (counts[:covered] * prof[:covered])[measured].sum()
        size = max(len(prof), len(counts))
        n = np.zeros(size)
        n[: len(counts)] = counts
        total = np.zeros(size)
        total[: len(sums)] = sums
        prior = np.zeros(size)
        prior[: len(prof)] = scale * prof
        w = np.where(np.arange(size) < len(prof), PROFILE_PRIOR_CYCLES, 0.0)
        table = np.where(n + w > 0, (total + w * prior) / np.maximum(n + w, 1e-12), 0.0)
        return [round(max(float(m), 0.0), 9) for m in table]
    if np.count_nonzero(counts >= TABLE_MIN_CYCLES) < 2:
        return []
    means = np.where(counts >= TABLE_MIN_CYCLES, sums / np.maximum(counts, 1), 0.0)
    last = int(np.flatnonzero(counts >= TABLE_MIN_CYCLES)[-1])
    return [round(max(float(m), 0.0), 9) for m in means[: last + 1]]


def _fit_verify(tau: np.ndarray, verify: np.ndarray, ctx: np.ndarray) -> tuple[float, float, float]:
    """verify_s ~ a + b * tau + k * context by least squares over multi-token passes (tau /
    context dropped when constant or when they come out negative)."""
    cols = [np.ones_like(tau)]
    cols.append(tau if tau.std() > 0 else np.zeros_like(tau))
    cols.append(ctx if ctx.std() > 0 else np.zeros_like(ctx))
    a, b, k = _lstsq_nonneg(cols, verify)
    if a <= 0.0:  # context term pulled the intercept below zero: fold it back
        a, b, k = [*_lstsq_nonneg(cols[:2], verify), 0.0]
    return a, b, k


def speed_spread(speeds: np.ndarray) -> float:
    """The coefficient of variation of a lognormal fitted to request speeds (standard deviation
    of their logs, ddof 1; 0 for fewer than 3 requests), rounded, at most 1."""
    logs = np.log(speeds[np.isfinite(speeds) & (speeds > 0)])
    if logs.size < 3:
        return 0.0
    sigma = float(logs.std(ddof=1))
    return round(min(1.0, math.sqrt(math.expm1(sigma * sigma))), 6)


def own_costs(lat: LatencyConfig) -> CostModel:
    """The single-stream costs a fitted ``[latency]`` charges on the trace's own device: what
    :func:`request_speeds` measures each request against (see :func:`trace_speeds`)."""
    return CostModel(lat.target_step_s, lat.verify_slope_s, lat.draft_step_s,
                     lat.prefill_s_per_token, lat.overhead_s, lat.context_s_per_token, math.inf,
                     tuple(lat.verify_table_s))


def trace_speeds(trace: Trace, fitted: LatencyConfig | None = None) -> np.ndarray:
    """Each request's speed factor, measured ONCE against the trace's own fitted costs
    (``fitted``, else :func:`fit_latency`), never against the costs of a what-if: a what-if that
    changes a cost (draft step, ``[draft]`` layers / hidden, target, profile) scales the changed
    part and keeps the factor. Measuring against the changed costs would turn the change into
    the factor and cancel it (a draft 64x dearer predicting the same latency)."""
    return request_speeds(trace, own_costs(fitted if fitted is not None else fit_latency(trace)))


def request_speeds(trace: Trace, costs: CostModel) -> np.ndarray:
    """Each trace request's measured seconds in model passes (prefill, draft, verify) over what
    ``costs`` charges for the same passes (the same cycles, taus and contexts), requests in
    arrival order. 1.0 everywhere on a steady machine; 1.4 for a request that ran while
    something else held the memory bus. The cost model says what a pass costs on this device;
    the speeds say how fast the device was while each request ran, so a replay that keeps them
    reproduces the run's slow spells -- and a what-if of the same requests under another policy
    runs them in the same conditions (which is what they were, when the two runs were recorded
    interleaved: see tests/bench/record_validation.py)."""
    r = trace.requests.iloc[request_order(trace)]
    c = trace.cycles
    if len(r) == 0:
        return np.ones(0)
    tau = c["tau"].to_numpy(dtype=np.int64)
    table = np.array([costs.verify_s(t + 1) for t in range(int(tau.max(initial=0)) + 1)])
    model_cycle = (tau * costs.draft_step_s + table[tau]
                   + costs.context_s_per_token * c["context_tokens"].to_numpy(dtype=float))
    measured_cycle = c["draft_s"].to_numpy(dtype=float) + c["verify_s"].to_numpy(dtype=float)
    # a step without its split (schema v2): its whole time, charged as one pass
    measured_cycle = np.where(np.isnan(measured_cycle), c["cycle_s"].to_numpy(dtype=float),
                              measured_cycle)
    rid = c["request_id"].to_numpy()
    ids = r["request_id"].to_numpy()
    model = pd.Series(model_cycle).groupby(rid).sum().reindex(ids, fill_value=0.0).to_numpy()
    meas = pd.Series(measured_cycle).groupby(rid).sum().reindex(ids, fill_value=0.0).to_numpy()
    model = model + costs.prefill_s_per_token * r["prompt_tokens"].to_numpy(dtype=float)
    meas = meas + r["prefill_s"].to_numpy(dtype=float)
    return np.where(model > 0, meas / np.maximum(model, 1e-12), 1.0)


def fit_step_latency(trace: Trace) -> LatencyConfig:
    """``[latency]`` numbers from the steps' wall times when the trace has no draft/verify
    split (see :mod:`sim.calibrate.steps`)."""
    c, r = trace.cycles, trace.requests
    tau = c["tau"].to_numpy(dtype=np.int64)
    step = c["cycle_s"].to_numpy(dtype=float)
    ctx = c["context_tokens"].to_numpy(dtype=float)
    use = step > 0
    spec = use & (tau > 0)
    fit_on = spec if spec.any() else use
    if not fit_on.any():
        fit_on = np.ones_like(use)
    a, b, k = _fit_verify(tau[fit_on].astype(float), step[fit_on], ctx[fit_on])
    table = verify_table(tau[use], step[use] - k * ctx[use]) if use.any() else []
    batch_table: list[list[float]] = []
    if "batch_size" in c.columns and use.any():
        batch = c["batch_size"].to_numpy(dtype=float)
        if np.isfinite(batch).all() and batch.max() > 1:
            batch_table = batch_step_table(tau[use], batch[use].astype(np.int64),
                                           step[use] - k * ctx[use], (a, b))
    prefill_per_token = _prefill_per_token(r)
    fitted = CostModel(a, b, 0.0, prefill_per_token, 0.0, k, math.inf, tuple(table))
    return LatencyConfig(
        model="fixed",
        target_step_s=a,
        verify_slope_s=b,
        draft_step_s=0.0,  # inside each step's measured time
        prefill_s_per_token=prefill_per_token,
        overhead_s=0.0,
        context_s_per_token=k,
        verify_table_s=table,
        batch_verify_table_s=batch_table,
        speed_cv=speed_spread(request_speeds(trace, fitted)),
        **_trace_setup(trace),
    )
