"""Latency model: seconds of draft steps, verify passes, prefill and per-cycle overhead.

Costs come from the scenario's ``[latency]`` numbers, or from the numbers calibration fitted on
a measured trace (``model = "trace"``: :func:`sim.calibrate.costs.fit_latency` -- this module
never reads a trace), then optionally moved to another device by the roofline (``hardware``),
and a ``[draft]`` section may swap in another draft model's cost.

A verify pass over a batch of ``B`` requests scoring ``T = sum(tau_i + 1)`` tokens costs
``max(target_step_s, T * target_step_s / ridge_tokens) + verify_slope_s * (T - 1)
+ context_s_per_token * sum(context)``: flat in T while memory-bound, linear once T passes the
ridge (compute-bound), plus a per-token slope for devices where even small passes are not flat
(CPUs). A token of another row goes through the same weights as one more token of the same
row, so a batched pass costs what a single-sequence pass scoring ``T`` tokens costs (the
measured one of ``verify_table_s`` when there is one): without a batched profile, batching is
priced from the trace's own multi-token passes, never free. A single-stream pass drafting ``tau`` tokens costs ``verify_table_s[tau]`` instead when
that was measured: on a CPU a 1-token pass is much cheaper than any multi-token one, and the
multi-token costs follow the kernels' tile sizes (4 tokens may beat 3), which no line fits. A
live capture also profiles the pass for every token count (``live.profile``), so the table
covers draft lengths the trace's own policy never used. A
draft step over ``B`` sequences costs ``max(draft_step_s, B * draft_step_s / ridge)``.

On another device (``hardware``, or a ``profile`` of another device) the per-pass cost model
(:mod:`sim.models.costmodel`) prices every pass instead, through :func:`sim.models.hardware.move`, and the
resolved costs say how they were made: ``basis`` ``"trace"``, ``"profile"``, ``"catalog"`` (with
its ``band``) or ``"scenario"``. The target-only baseline's 1-token pass comes from the run
device's profile when there is one (``baseline_basis``), so two traces of one device share it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.models.batching import draft_growth, pass_s
from sim.models.catalog import device_of, get_device, same_device
from sim.models.costmodel import PassModel
from sim.models.hardware import DeviceSetup, anchored_draft_step, move, profile_for
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
    basis: str = "scenario"  # "trace" | "profile" | "catalog" | "scenario" (sim.models.hardware)
    band: float | None = None  # catalog only: the factor a figure can be off by
    pass_model: PassModel | None = None  # prices batched passes on a modelled device
    draft_on_device: bool = False  # the draft step comes from pass_model (a model draft)
    target_only_prefill_s_per_token: float | None = None  # None: prefill_s_per_token
    baseline_step_s: float | None = None  # target-only 1-token pass from a profile
    baseline_basis: str = ""  # where the target-only baseline's pass cost comes from
    # batched passes, [b - 1][n - 1]: b rows scoring n tokens each (sim.models.batching); (): the line
    batch_table: tuple[tuple[float, ...], ...] = ()
    shape_note: str = ""  # an assumed target shape, said wherever the figures are shown
    prefill_with_draft: bool = False  # a modelled prefill also runs the draft model's pass

    def verify_s(self, tokens: int, batch: int = 1, context: int = 0) -> float:
        """One target pass scoring ``tokens`` in all over ``batch`` sequences."""
        ctx = self.context_s_per_token * context
        measured = tokens - 1 < len(self.verify_table) and self.verify_table[tokens - 1]
        if batch == 1 and measured:
            return self.verify_table[tokens - 1] + ctx
        if self.pass_model is not None:
            return self.pass_model.verify_s(tokens, batch) + ctx
        if measured:  # a token of another row costs what one more token of the same row does
            return self.verify_table[tokens - 1] + ctx
        base = self.target_step_s
        if tokens > self.ridge_tokens:
            base = tokens * self.target_step_s / self.ridge_tokens
        return base + self.verify_slope_s * (tokens - 1) + ctx

    def batch_step(self, taus: Sequence[int], context: int = 0) -> tuple[float, float]:
        """(draft seconds, verify seconds) of one continuous-batching step whose rows draft
        ``taus``: max(tau) draft passes over the rows still drafting and ONE verify pass.

        With a batched profile (``batch_table``) the step is a padded batch: the verify pass
        scores ``max(tau) + 1`` positions in every row (:func:`sim.models.batching.pass_s`) and a draft
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
        if self.draft_on_device and self.pass_model is not None and batch > 1:
            return self.pass_model.draft_step_s(batch)
        if batch > self.ridge_tokens:
            return batch * self.draft_step_s / self.ridge_tokens
        return self.draft_step_s

    def prefill_s(self, prompt_tokens: int) -> float:
        """Prefill of one prompt: on a modelled device, one pass over the prompt (a GPU's
        prefill is one launch-bound or compute-bound pass, not a per-token price: a 40-token
        prompt costs about a 1-token pass, a 4,000-token one its arithmetic), and the draft
        model's pass when it fills a cache too; else the per-token price."""
        if self.pass_model is not None and prompt_tokens > 0:
            return self.pass_model.prefill_s(int(prompt_tokens), self.prefill_with_draft)
        return self.prefill_s_per_token * prompt_tokens

    def prefill_many(self, prompt_tokens: np.ndarray) -> np.ndarray:
        """:meth:`prefill_s` of every prompt."""
        if self.pass_model is None:
            return self.prefill_s_per_token * prompt_tokens
        lengths = np.asarray(prompt_tokens, dtype=np.int64)
        unique, inverse = np.unique(lengths, return_inverse=True)
        return np.array([self.prefill_s(int(n)) for n in unique])[inverse]

    @property
    def target_only_prefill(self) -> float:
        """Prefill seconds per prompt token of a run that never drafts (no draft cache to
        fill): charged alike by a ``target_only`` run and by every target-only baseline."""
        if self.target_only_prefill_s_per_token is None:
            return self.prefill_s_per_token
        return self.target_only_prefill_s_per_token

    def for_target_only(self) -> CostModel:
        """These costs as a run that never drafts pays them (prefill without the draft's
        share; the 1-token pass from the device's profile when the baseline has one)."""
        out = dataclasses.replace(self, prefill_s_per_token=self.target_only_prefill,
                                  target_only_prefill_s_per_token=None,
                                  prefill_with_draft=False)
        if self.baseline_step_s is not None:
            table = list(self.verify_table) or [0.0]
            table[0] = self.baseline_step_s
            out = dataclasses.replace(out, verify_table=tuple(table),
                                      target_step_s=self.baseline_step_s)
        return out

    def cycle_s(self, tau: int, context: int = 0) -> float:
        """A single-stream cycle: tau draft steps, one verify pass, overhead."""
        return tau * self.draft_step_s + self.verify_s(tau + 1, 1, context) + self.overhead_s


def hardware_note(scenario: Scenario, fitted: LatencyConfig | None = None) -> str | None:
    """A warning when ``hardware`` names the run's own device (nothing moves), else None
    (``fitted``: the numbers calibration fitted on the trace, for ``model = "trace"``)."""
    lat = scenario.latency
    source = lat.source_hardware or (fitted.source_hardware if fitted is not None else "")
    if lat.hardware and source and same_device(lat.hardware, source):
        return (f'[latency] hardware = "{lat.hardware}" is the trace\'s own device: its '
                "measured costs are used (basis trace)")
    return None


def resolve_costs(scenario: Scenario, fitted: LatencyConfig | None = None,
                  setup: DeviceSetup | None = None) -> CostModel:
    """The costs a simulation charges, from the scenario (and, for ``model="trace"``, the
    numbers calibration fitted on the trace: ``fitted``; ``setup``: what calibration learned of
    the trace's device, models and ``[latency] profile``).

    Order: numbers (given or fitted) -> on another device (``hardware``, or a profile of
    another device than the trace's), every pass priced by the cost model, anchored to that
    device's profile when there is one (:func:`sim.models.hardware.move`) -> ``[draft] layers / hidden
    / params`` price the draft's step by the cost model on the chosen device -> ``[draft]
    step_s`` overrides the draft cost.
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
            dtype=lat.dtype,
        )
    setup = setup or DeviceSetup()
    shape_note = ""
    prefill_with_draft = False
    target_step, slope, draft_step = lat.target_step_s, lat.verify_slope_s, lat.draft_step_s
    table = list(lat.verify_table_s)
    batch_table = [list(row) for row in lat.batch_verify_table_s]
    prefill, context = lat.prefill_s_per_token, lat.context_s_per_token
    ridge = lat.ridge_tokens or math.inf
    draft_params = scenario.draft.params or lat.draft_params
    if not setup.device and lat.draft_params > 0 and setup.draft_kind == "none":
        setup = dataclasses.replace(setup, draft_kind="model")  # a scenario's draft model
    target_only_prefill = prefill * target_prefill_share(lat)
    from_trace = scenario.latency.model == "trace" or bool(  # scenario_from_trace's numbers
        setup.device and lat.fitted_on == setup.device)
    basis = "trace" if from_trace else "scenario"
    band: float | None = None
    pass_model: PassModel | None = None
    on_device = False
    source = setup.device or lat.source_hardware
    hardware = lat.hardware
    if not hardware and setup.profile is not None and source \
            and not same_device(setup.profile.device, source):
        found = device_of(setup.profile.device)
        if found is None:
            raise SpecsimError(f'{scenario.where}: [latency] profile measured "'
                               f'{setup.profile.device}", which the catalog does not know')
        hardware = found.key
    by_architecture = any(getattr(scenario.draft, k) for k in ("layers", "hidden", "params",
                                                                "model"))
    if hardware and not (source and same_device(hardware, source)):
        moved = move(hardware=hardware, dtype=lat.dtype, setup=setup,
                     target_params=lat.target_params, scenario_draft=scenario.draft,
                     draft_params=draft_params, host_draft_step_s=draft_step,
                     where=scenario.where, scenario_target=scenario.target,
                     stack=scenario.latency.stack)
        if moved.draft_step_s == 0.0 and draft_step > 0 and setup.draft_kind == "none":
            moved = dataclasses.replace(  # a draft of unknown kind: moves with the target
                moved, draft_step_s=draft_step * moved.target_step_s / max(target_step, 1e-12))
        target_step, table, draft_step = moved.target_step_s, list(moved.verify_table), \
            moved.draft_step_s
        prefill, context, slope = moved.prefill_s_per_token, moved.context_s_per_token, 0.0
        target_only_prefill = moved.target_prefill_s_per_token
        basis, band, pass_model = moved.basis, moved.band, moved.pass_model
        shape_note = moved.note
        prefill_with_draft = moved.prefill_s_per_token > moved.target_prefill_s_per_token
        on_device = setup.draft_kind == "model" or by_architecture
        ridge = math.inf
        batch_table = []  # the source device's batched passes do not move
    elif by_architecture and scenario.draft.step_s is None:
        draft_step = anchored_draft_step(
            setup=setup, device_name=source, target_params=lat.target_params,
            scenario_draft=scenario.draft, draft_params=draft_params,
            target_step_s=table[0] if table and table[0] else target_step,
            where=scenario.where, scenario_target=scenario.target)
    if scenario.draft.step_s is not None:
        draft_step = scenario.draft.step_s
        on_device = False
    run_device = get_device(hardware) if hardware else device_of(source) if source else None
    prof = profile_for(setup, run_device) if run_device is not None else None
    baseline_step = prof.one_token_s() if prof is not None else None
    if baseline_step is not None:
        at = min(p["context"] for p in prof.role_points("target")  # type: ignore[union-attr]
                 if p["batch"] == 1 and p["tokens"] == 1)
        baseline_step = max(baseline_step - context * at, 1e-12)
    return CostModel(
        target_step_s=target_step,
        verify_slope_s=slope,
        draft_step_s=draft_step,
        prefill_s_per_token=prefill,
        overhead_s=lat.overhead_s,
        context_s_per_token=context,
        ridge_tokens=ridge,
        verify_table=tuple(table),
        basis=basis,
        band=band,
        pass_model=pass_model,
        draft_on_device=on_device,
        target_only_prefill_s_per_token=target_only_prefill,
        baseline_step_s=baseline_step,
        baseline_basis="profile" if baseline_step is not None else basis,
        batch_table=tuple(tuple(row) for row in batch_table),
        shape_note=shape_note,
        prefill_with_draft=prefill_with_draft,
    )


def draw_speeds(cv: float, n: int, seed: int) -> np.ndarray:
    """``n`` request speeds, lognormal with mean 1 and coefficient of variation ``cv``, from a
    stream of their own (seeded from the run's seed, so acceptance draws do not move)."""
    sigma = math.sqrt(math.log1p(cv * cv))
    rng = np.random.default_rng([seed, 0x5BEED])
    return np.exp(rng.normal(-0.5 * sigma * sigma, sigma, n))


def draw_empirical(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` request speeds drawn with replacement from ``pool`` (a trace's measured request
    speeds), from the same stream of their own as :func:`draw_speeds`."""
    rng = np.random.default_rng([seed, 0x5BEED])
    return rng.choice(np.asarray(pool, dtype=float), n)


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
