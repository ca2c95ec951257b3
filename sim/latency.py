"""Latency model: seconds of draft steps, verify passes, prefill and per-cycle overhead.

Costs come from the scenario's ``[latency]`` numbers, or from the numbers calibration fitted on
a measured trace (``model = "trace"``: :func:`sim.calibrate.costs.fit_latency` -- this module
never reads a trace), then optionally moved to another device by the roofline (``hardware``),
and a ``[draft]`` section may swap in another draft model's cost.

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

from sim.batching import draft_growth, pass_s
from sim.hardware import Rescale, get_hardware
from sim.scenario import LatencyConfig, Scenario
from tracing.errors import SpecsimError


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
        pass grows with the batch as the target's one-token pass does; the table was scaled to
        the trace's passes at the contexts they ran, so no context term is added to it. Without
        one: flat until the batch's scored tokens reach the ridge, compute-bound beyond it."""
        longest = max(taus, default=0)
        rows = len(taus)
        if self.batch_table:
            verify = pass_s(self.batch_table, rows, longest + 1)
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


def hardware_note(scenario: Scenario, fitted: LatencyConfig | None = None) -> str | None:
    """A warning when ``hardware`` is set but there is nothing to move from (``fitted``: the
    numbers calibration fitted on the trace, for ``model = "trace"``)."""
    lat = scenario.latency
    source = lat.source_hardware
    if lat.model == "trace" and fitted is not None and not source:
        source = fitted.source_hardware
    if lat.hardware and not source and lat.target_params <= 0:
        return (
            f'[latency] hardware = "{lat.hardware}" only sets the ridge: costs are not rescaled '
            "without source_hardware (or target_params for a roofline from first principles)"
        )
    return None


def resolve_costs(scenario: Scenario, fitted: LatencyConfig | None = None) -> CostModel:
    """The costs a simulation charges, from the scenario (and, for ``model="trace"``, the
    numbers calibration fitted on the trace: ``fitted``).

    Order: numbers (given or fitted) -> roofline rescaling to ``hardware`` (from
    ``source_hardware``; or from first principles with ``target_params`` / ``draft_params`` when
    no source is known) -> ``[draft] step_s`` / ``params`` override the draft cost.
    """
    lat = scenario.latency
    if lat.model == "trace":
        if fitted is None:
            raise SpecsimError(f'{scenario.where}: [latency] model = "trace" needs a trace')
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


def draw_speeds(cv: float, n: int, seed: int) -> np.ndarray:
    """``n`` request speeds, lognormal with mean 1 and coefficient of variation ``cv``, from a
    stream of their own (seeded from the run's seed, so acceptance draws do not move)."""
    sigma = math.sqrt(math.log1p(cv * cv))
    rng = np.random.default_rng([seed, 0x5BEED])
    return np.exp(rng.normal(-0.5 * sigma * sigma, sigma, n))


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
