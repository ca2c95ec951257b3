"""Latency model: seconds of draft steps, verify passes, prefill and per-cycle overhead.

Costs come from the scenario's ``[latency]`` numbers, or are fitted from a measured trace
(``model = "trace"`` or :func:`fit_latency`), then optionally moved to another device by the
roofline (``hardware``), and a ``[draft]`` section may swap in another draft model's cost.

A verify pass over a batch of ``B`` requests scoring ``T = sum(tau_i + 1)`` tokens costs
``max(target_step_s, T * target_step_s / ridge_tokens) + verify_slope_s * (T - B)
+ context_s_per_token * sum(context)``: flat in T while memory-bound, linear once T passes the
ridge (compute-bound), plus a per-token slope for devices where even small passes are not flat
(CPUs). A single-stream pass drafting ``tau`` tokens costs ``verify_table_s[tau]`` instead when
that was measured: on a CPU a 1-token pass is much cheaper than any multi-token one, and the
multi-token costs follow the kernels' tile sizes (4 tokens may beat 3), which no line fits. A
live capture also profiles the pass for every token count (``live.profile``), so the table
covers draft lengths the trace's own policy never used. A
draft step over ``B`` sequences costs ``max(draft_step_s, B * draft_step_s / ridge)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.batching import batch_profile_of, draft_growth, pass_s, scaled_table
from sim.hardware import Rescale, get_hardware, hardware_of_device
from sim.scenario import LatencyConfig, Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

TABLE_MIN_CYCLES = 1  # cycles a draft length needs for its own measured verify cost
PROFILE_PRIOR_CYCLES = 5.0  # weight (in cycles) of the scaled profile beside measured passes
PROFILE_KEY = "verify_profile_s"  # run metadata key written by live.profile


@dataclass(frozen=True)
class CostModel:
    """Resolved costs (seconds) the simulator charges; ``ridge_tokens`` inf = always flat."""

    target_step_s: float
    verify_slope_s: float
    draft_step_s: float
    prefill_s_per_token: float
    overhead_s: float
    context_s_per_token: float
    ridge_tokens: float
    verify_table: tuple[float, ...] = ()  # single stream, by tau; 0: the line
    # batched passes, [b - 1][n - 1]: b rows scoring n tokens each (sim.batching); (): the line
    batch_table: tuple[tuple[float, ...], ...] = ()

    def verify_s(self, tokens: int, batch: int = 1, context: int = 0) -> float:
        """One target pass scoring ``tokens`` in all over ``batch`` sequences."""
        ctx = self.context_s_per_token * context
        if batch == 1 and tokens - 1 < len(self.verify_table) and self.verify_table[tokens - 1]:
            return self.verify_table[tokens - 1] + ctx
        base = self.target_step_s
        if tokens > self.ridge_tokens:
            base = tokens * self.target_step_s / self.ridge_tokens
        return base + self.verify_slope_s * (tokens - batch) + ctx

    def batch_step(self, taus: Sequence[int], context: int = 0) -> tuple[float, float]:
        """(draft seconds, verify seconds) of one continuous-batching step whose rows draft
        ``taus``: max(tau) draft passes over the rows still drafting and ONE verify pass.

        With a batched profile (``batch_table``) the step is a padded batch: the verify pass
        scores ``max(tau) + 1`` positions in every row (:func:`sim.batching.pass_s`) and a draft
        pass grows with the batch as the target's one-token pass does. Without one: flat until
        the batch's scored tokens reach the ridge, compute-bound beyond it."""
        longest = max(taus, default=0)
        rows = len(taus)
        ctx = self.context_s_per_token * context
        if self.batch_table:
            verify = pass_s(self.batch_table, rows, longest + 1) + ctx
            draft = 0.0
            for j in range(longest):  # pass j runs over the rows drafting more than j tokens
                drafting = sum(t > j for t in taus)
                draft += self.draft_step_s * draft_growth(self.batch_table, drafting)
            return draft, verify
        if rows <= self.ridge_tokens:  # every draft pass memory-bound: flat
            draft = longest * self.draft_step_s
        else:
            draft = sum(self.draft_step(sum(t > j for t in taus)) for j in range(longest))
        return draft, self.verify_s(sum(taus) + rows, rows, context)

    def step_s(self, batch: int, tau: int) -> float:
        """Seconds of one batch step of ``batch`` rows each drafting ``tau`` (a policy's
        ``StepCost``): draft passes, the verify pass and the per-step overhead."""
        draft, verify = self.batch_step([tau] * max(1, batch))
        return draft + verify + self.overhead_s

    def draft_step(self, batch: int = 1) -> float:
        """One draft forward pass over ``batch`` sequences (one token each)."""
        if batch > self.ridge_tokens:
            return batch * self.draft_step_s / self.ridge_tokens
        return self.draft_step_s

    def prefill_s(self, prompt_tokens: int) -> float:
        """Prefill of one prompt."""
        return self.prefill_s_per_token * prompt_tokens

    def cycle_s(self, tau: int, context: int = 0) -> float:
        """A single-stream cycle: tau draft steps, one verify pass, overhead."""
        return tau * self.draft_step_s + self.verify_s(tau + 1, 1, context) + self.overhead_s


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
    (:func:`request_speeds`, :func:`speed_spread`).
    """
    c, r = trace.cycles, trace.requests
    if len(c) == 0:
        raise SpecsimError(f"{trace.name}: no cycles to fit a latency model from")
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
    prompt = r["prompt_tokens"].to_numpy(dtype=float)
    prefill = r["prefill_s"].to_numpy(dtype=float)
    prefill_per_token = float((prompt * prefill).sum() / (prompt**2).sum()) if len(r) else 0.0
    device_hw = hardware_of_device(trace.meta.device)
    extra = trace.meta.extra or {}
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
        batch_verify_table_s=_batch_table(trace),
        speed_cv=speed_spread(request_speeds(trace, fitted)),
        source_hardware=device_hw.name if device_hw else "",
        target_params=float(extra.get("target_params") or extra.get("target_n_params")
                            or extra.get("n_params") or 0.0),
        draft_params=float(extra.get("draft_params") or extra.get("draft_n_params") or 0.0),
    )


def _batch_table(trace: Trace) -> list[list[float]]:
    """A server trace's batched verify profile scaled to its measured passes ([] if none)."""
    profile = batch_profile_of(trace)
    return scaled_table(trace, profile) if profile else []


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


def hardware_note(scenario: Scenario, trace: Trace | None = None) -> str | None:
    """A warning when ``hardware`` is set but there is nothing to move from."""
    lat = scenario.latency
    source = lat.source_hardware
    if lat.model == "trace" and trace is not None and not source:
        source = fit_latency(trace).source_hardware
    if lat.hardware and not source and lat.target_params <= 0:
        return (
            f'[latency] hardware = "{lat.hardware}" only sets the ridge: costs are not rescaled '
            "without source_hardware (or target_params for a roofline from first principles)"
        )
    return None


def resolve_costs(scenario: Scenario, trace: Trace | None = None) -> CostModel:
    """The costs a simulation charges, from the scenario (and the trace for ``model="trace"``).

    Order: numbers (given or fitted) -> roofline rescaling to ``hardware`` (from
    ``source_hardware``; or from first principles with ``target_params`` / ``draft_params`` when
    no source is known) -> ``[draft] step_s`` / ``params`` override the draft cost.
    """
    lat = scenario.latency
    if lat.model == "trace":
        if trace is None:
            raise SpecsimError(f'{scenario.where}: [latency] model = "trace" needs a trace')
        fitted = fit_latency(trace)
        lat = dataclasses.replace(
            fitted,
            hardware=lat.hardware,
            source_hardware=lat.source_hardware or fitted.source_hardware,
            ridge_tokens=lat.ridge_tokens,
            target_params=lat.target_params or fitted.target_params,
            draft_params=lat.draft_params or fitted.draft_params,
        )
    target_step, slope, draft_step = lat.target_step_s, lat.verify_slope_s, lat.draft_step_s
    table = list(lat.verify_table_s)
    batch_table = [list(row) for row in lat.batch_verify_table_s]
    prefill, context = lat.prefill_s_per_token, lat.context_s_per_token
    ridge = lat.ridge_tokens or math.inf
    draft_params = scenario.draft.params or lat.draft_params
    if lat.hardware:
        dst = get_hardware(lat.hardware)
        ridge = lat.ridge_tokens or dst.ridge_tokens
        if lat.source_hardware:
            scale = Rescale(get_hardware(lat.source_hardware), dst)
            target_step *= scale.memory
            if get_hardware(lat.source_hardware) is not dst:
                table = []  # the source device's kernel quirks do not move: the roofline line
                batch_table = []
            draft_step *= scale.memory
            context *= scale.memory
            slope *= scale.compute
            prefill *= scale.compute
        elif lat.target_params > 0:
            target_step = dst.step_s(lat.target_params)
            table, batch_table = [], []  # from first principles: the roofline line alone
            prefill = 2.0 * lat.target_params / (dst.bf16_tflops * 1e12)
            if draft_params:
                draft_step = dst.step_s(draft_params)
        if scenario.draft.params and scenario.draft.step_s is None:
            draft_step = dst.step_s(scenario.draft.params)
    if scenario.draft.step_s is not None:
        draft_step = scenario.draft.step_s
    return CostModel(
        target_step_s=target_step,
        verify_slope_s=slope,
        draft_step_s=draft_step,
        prefill_s_per_token=prefill,
        overhead_s=lat.overhead_s,
        context_s_per_token=context,
        ridge_tokens=ridge,
        verify_table=tuple(table),
        batch_table=tuple(tuple(row) for row in batch_table),
    )


def speed_spread(speeds: np.ndarray) -> float:
    """The coefficient of variation of a lognormal fitted to request speeds (standard deviation
    of their logs, ddof 1; 0 for fewer than 3 requests), rounded, at most 1."""
    logs = np.log(speeds[np.isfinite(speeds) & (speeds > 0)])
    if logs.size < 3:
        return 0.0
    sigma = float(logs.std(ddof=1))
    return round(min(1.0, math.sqrt(math.expm1(sigma * sigma))), 6)


def draw_speeds(cv: float, n: int, seed: int) -> np.ndarray:
    """``n`` request speeds, lognormal with mean 1 and coefficient of variation ``cv``, from a
    stream of their own (seeded from the run's seed, so acceptance draws do not move)."""
    sigma = math.sqrt(math.log1p(cv * cv))
    rng = np.random.default_rng([seed, 0x5BEED])
    return np.exp(rng.normal(-0.5 * sigma * sigma, sigma, n))


def request_speeds(trace: Trace, costs: CostModel) -> np.ndarray:
    """Each trace request's measured seconds in model passes (prefill, draft, verify) over what
    ``costs`` charges for the same passes (the same cycles, taus and contexts), requests in
    arrival order. 1.0 everywhere on a steady machine; 1.4 for a request that ran while
    something else held the memory bus. The cost model says what a pass costs on this device;
    the speeds say how fast the device was while each request ran, so a replay that keeps them
    reproduces the run's slow spells -- and a what-if of the same requests under another policy
    runs them in the same conditions (which is what they were, when the two runs were recorded
    interleaved: see tests/bench/record_validation.py)."""
    from sim.acceptance import request_order

    r = trace.requests.iloc[request_order(trace)]
    c = trace.cycles
    if len(r) == 0:
        return np.ones(0)
    tau = c["tau"].to_numpy(dtype=np.int64)
    table = np.array([costs.verify_s(t + 1) for t in range(int(tau.max(initial=0)) + 1)])
    model_cycle = (tau * costs.draft_step_s + table[tau]
                   + costs.context_s_per_token * c["context_tokens"].to_numpy(dtype=float))
    measured_cycle = c["draft_s"].to_numpy(dtype=float) + c["verify_s"].to_numpy(dtype=float)
    rid = c["request_id"].to_numpy()
    ids = r["request_id"].to_numpy()
    model = pd.Series(model_cycle).groupby(rid).sum().reindex(ids, fill_value=0.0).to_numpy()
    meas = pd.Series(measured_cycle).groupby(rid).sum().reindex(ids, fill_value=0.0).to_numpy()
    model = model + costs.prefill_s_per_token * r["prompt_tokens"].to_numpy(dtype=float)
    meas = meas + r["prefill_s"].to_numpy(dtype=float)
    return np.where(model > 0, meas / np.maximum(model, 1e-12), 1.0)


def target_prefill_share(lat: LatencyConfig) -> float:
    """The target's share of a measured prefill, which also filled the draft's cache (a
    layer-skip or model draft runs over the prompt too): target / (target + draft) parameters,
    1 when either is unknown or the draft is model-free. The target-only baseline pays only
    this share. (By total parameters: the shared embedding does no per-token matmul, so this
    slightly undercounts the target's share -- 0.70 for SmolLM2-135M with its first 8 layers,
    0.77 measured.)"""
    if lat.target_params > 0 and lat.draft_params > 0:
        return lat.target_params / (lat.target_params + lat.draft_params)
    return 1.0
