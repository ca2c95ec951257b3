"""Scenarios: the TOML file the simulator runs, as small dataclasses validated on construction.

Every bad key is a :class:`SpecsimError` that names it, e.g.
``scenario.toml: [acceptance] alpha = 1.3: must be in [0, 1]``. Every section and key, with its
meaning, is in docs/scenario.md, generated from these dataclasses by :mod:`sim.scenario_doc`
(a key added here needs its line there; a test checks).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sim.policies.library import POLICIES, build_policy
from tracing.errors import SpecsimError

# A token count: an int, "trace" (taken from a trace's requests) or a distribution table, e.g.
# {dist="lognormal", mean=256, sigma=0.5} | {dist="uniform", low=, high=} |
# {dist="choice", values=[...], weights=[...]} (weights optional).
TokenSpec = int | str | dict[str, Any]

DIST_KEYS = {
    "lognormal": {"mean", "sigma", "min", "max"},
    "uniform": {"low", "high"},
    "choice": {"values", "weights"},
}


def _rng(lo: float | None = None, hi: float | None = None, **kw: Any) -> Any:
    """Field metadata: the allowed range and/or choices of a key."""
    return {"range": (lo, hi), **kw}


@dataclass(frozen=True)
class WorkloadConfig:
    """[workload]: how many requests, their lengths and how they arrive."""

    # how many requests; with arrival = "file", 0 (its default there) = every request of the
    # file from start_s on
    requests: int = field(default=200, metadata=_rng(0))
    prompt_tokens: TokenSpec = field(default=128, metadata={"tokens": True})
    output_tokens: TokenSpec = field(default=256, metadata={"tokens": True})
    arrival: str = field(default="closed",
                         metadata={"choices": ("closed", "poisson", "trace", "file")})
    rate_per_s: float = field(default=0.0, metadata=_rng(0.0))
    # arrival = "file": a real workload (sim.calibrate.arrivals) -- an Azure LLM trace CSV, a
    # Mooncake JSONL or a specsim trace; relative paths from the scenario file's folder
    arrivals_file: str = ""
    rate_scale: float = field(default=1.0, metadata=_rng(0.0))  # the file's gaps divided by this
    start_s: float = field(default=0.0, metadata=_rng(0.0))  # where in the file to start
    max_prompt_tokens: int = field(default=0, metadata=_rng(0))  # length caps (0 = none)
    max_output_tokens: int = field(default=0, metadata=_rng(0))
    concurrency: int = field(default=1, metadata=_rng(1))  # users of a closed workload
    seed: int = field(default=0, metadata=_rng(0))


@dataclass(frozen=True)
class AcceptanceConfig:
    """[acceptance]: how many drafted tokens the target accepts."""

    model: str = field(default="iid", metadata={"choices": ("iid", "positional", "trace")})
    alpha: float | list[float] = field(default=0.8, metadata=_rng(0.0, 1.0))
    context_buckets: list[int] = field(default_factory=list, metadata=_rng(0))  # "trace" only
    draft_confidence: float = field(default=4.0, metadata=_rng(0.0))  # Beta concentration
    per_request: bool = False  # "trace" only: each replayed request keeps its own hazards
    replay: bool = False  # "trace" only: replay recorded depths first (implies per_request)
    # what a server reports, solved to the i.i.d. alpha (sim.scenario.solve_alpha) at the draft
    # length ``tau`` it was measured with: vLLM's mean accepted length (1 + accepted / drafts)
    # or the accepted tokens per draft
    mean_accepted_length: float | None = field(default=None, metadata=_rng(1.0))
    accepted_per_draft: float | None = field(default=None, metadata=_rng(0.0))
    tau: int | None = field(default=None, metadata=_rng(1))
    # acceptance by context length: [[from_tokens, alpha], ...], from_tokens increasing from 0
    by_context: list[list[float]] = field(default_factory=list, metadata=_rng(0.0))


@dataclass(frozen=True)
class LatencyConfig:
    """[latency]: seconds of each model pass (fitted from a trace with ``model = "trace"``)."""

    model: str = field(default="fixed", metadata={"choices": ("fixed", "trace")})
    target_step_s: float = field(default=0.020, metadata=_rng(0.0))
    verify_slope_s: float = field(default=0.0, metadata=_rng(0.0))
    draft_step_s: float = field(default=0.002, metadata=_rng(0.0))
    prefill_s_per_token: float = field(default=0.0, metadata=_rng(0.0))
    overhead_s: float = field(default=0.0, metadata=_rng(0.0))
    context_s_per_token: float = field(default=0.0, metadata=_rng(0.0))
    # measured single-stream verify cost by draft length (index = tau; 0 = not measured: the
    # line above) -- CPU kernels make it neither flat nor linear in tau
    verify_table_s: list[float] = field(default_factory=list, metadata=_rng(0.0))
    # measured batched verify cost [b - 1][n - 1]: b rows scoring n tokens each, padded (a
    # server's start-up profile scaled to its trace; sim.models.batching); [] = the line and ridge
    batch_verify_table_s: list[list[float]] = field(default_factory=list, metadata=_rng(0.0))
    ridge_tokens: float = field(default=0.0, metadata=_rng(0.0))  # 0: from hardware, else flat
    hardware: str = ""  # a catalog device (sim.models.catalog): key, alias or exact device name
    source_hardware: str = ""
    # a profile of the target device: a `specsim profile` file, a trace that carries a verify
    # profile, or a target-only trace of the device (its 1-token pass)
    profile: str = ""
    fitted_on: str = ""  # the device string of the trace these numbers were fitted on
    # the software stack on a modelled device (sim.models.catalog.FrameworkCost): "" its own measured
    # eager stack, "eager", or "cuda-graph" (a vLLM-like engine; not measured here)
    stack: str = field(default="", metadata={"choices": ("", "eager", "cuda-graph")})
    dtype: str = ""  # on another device: fp32 | bf16 | fp16 | int8 | int4 ("": its default)
    # model sizes: the roofline from first principles, and the target's share of a prefill
    # that also filled the draft's cache (the target-only baseline pays only that share)
    target_params: float = field(default=0.0, metadata=_rng(0.0))
    draft_params: float = field(default=0.0, metadata=_rng(0.0))
    # with a trace, on its own device: each replayed request runs at the speed its trace request
    # was measured at (sim.calibrate.costs.request_speeds) -- the run's slow spells, replayed. Exact for
    # a replay of the trace's own configuration; for another policy it helps only if that run
    # met the same slow spells, which even interleaved recording does not ensure (a spell is
    # shorter than a round of configurations), so it is off unless asked for.
    replay_speed: bool = False
    # request-to-request spread of that speed (coefficient of variation; fitted from a trace):
    # each request draws a lognormal speed with mean 1 -- the tail a noiseless model misses
    speed_cv: float = field(default=0.0, metadata=_rng(0.0, 1.0))
    # how that speed is drawn: "lognormal" (mean 1, speed_cv) or "empirical" (with a trace, on
    # its own device: each request's speed drawn from the trace's measured request speeds, with
    # replacement -- the heavy tail of a run whose first requests were 3x slow, kept)
    speed_model: str = field(default="lognormal",
                             metadata={"choices": ("lognormal", "empirical")})


@dataclass(frozen=True)
class PolicyConfig:
    """[policy]: a draft-length policy by name and its parameters (see sim.policies.library)."""

    name: str = "fixed"
    params: dict[str, Any] = field(default_factory=lambda: {"tau": 4})

    def spec(self) -> str:
        """The ``NAME:key=value`` spec of this policy (only keys the policy takes)."""
        items = ",".join(f"{k}={v}" for k, v in self.accepted_params().items())
        return f"{self.name}:{items}" if items else self.name

    def accepted_params(self) -> dict[str, Any]:
        """The parameters the named policy takes (others, e.g. ``tau`` of target_only, dropped)."""
        known = _policy_keys(self.name)
        return {k: v for k, v in self.params.items() if k in known}


@dataclass(frozen=True)
class BudgetConfig:
    """[budget]: verify passes per request (0 = unlimited); enforced through the policies."""

    max_verify_per_request: int = field(default=0, metadata=_rng(0))  # 0 = unlimited (no cap)
    mean_verify_per_request: float = field(default=0.0, metadata=_rng(0.0))


@dataclass(frozen=True)
class ServerConfig:
    """[server]: single stream (max_batch = 1) or continuous batching up to max_batch."""

    max_batch: int = field(default=1, metadata=_rng(1))


@dataclass(frozen=True)
class DraftConfig:
    """[draft]: another draft model by its own cost and acceptance (unset keys change nothing)."""

    name: str = ""
    model: str = ""  # a draft of the built-in table (sim.models.shapes), priced on the device
    step_s: float | None = field(default=None, metadata=_rng(0.0))
    params: float | None = field(default=None, metadata=_rng(0.0))
    # a draft by architecture: its step cost from the cost model on the chosen device
    layers: int | None = field(default=None, metadata=_rng(1))
    hidden: int | None = field(default=None, metadata=_rng(8))
    alpha: float | None = field(default=None, metadata=_rng(0.0, 1.0))
    acceptance_scale: float = field(default=1.0, metadata=_rng(0.0))
    # P(the draft proposes nothing in a cycle that asked for tokens), e.g. no n-gram match
    no_proposal_prob: float = field(default=0.0, metadata=_rng(0.0, 1.0))
    # P(the draft proposes at most k tokens), k = 1..len, among cycles that propose something
    # (a cap shorter than the policy's tau ends the draft there); the rest is uncapped
    proposal_caps: list[float] = field(default_factory=list, metadata=_rng(0.0, 1.0))
    # an n-gram draft of this size, replayed exactly over a greedy n-gram trace's recorded
    # tokens (sim.calibrate.draftreplay; the trace captured with --record-tokens)
    n: int | None = field(default=None, metadata=_rng(1))


@dataclass(frozen=True)
class TargetConfig:
    """[target]: the target's shape on a modelled device -- a model of the built-in table
    (``model``, :mod:`sim.models.shapes`), a transformers ``config`` file (relative paths from the
    scenario's folder; a ``specsim profile`` file's ``target_config`` also reads), or the
    geometry itself; ``tp``: GPUs (of the one device kind) the weights and KV are split over.
    A parameter count alone is refused unless ``shape = "assumed"``."""

    model: str = ""
    config: str = ""
    layers: int | None = field(default=None, metadata=_rng(1))
    hidden: int | None = field(default=None, metadata=_rng(1))
    intermediate: int | None = field(default=None, metadata=_rng(1))
    heads: int | None = field(default=None, metadata=_rng(1))
    kv_heads: int | None = field(default=None, metadata=_rng(1))
    head_dim: int | None = field(default=None, metadata=_rng(1))
    vocab: int | None = field(default=None, metadata=_rng(1))
    params: float | None = field(default=None, metadata=_rng(0.0))
    tied: bool | None = None
    tp: int = field(default=1, metadata=_rng(1))
    shape: str = field(default="", metadata={"choices": ("", "assumed")})

    @property
    def geometry(self) -> tuple[str, ...]:
        """The geometry keys given."""
        return tuple(k for k in ("layers", "hidden", "intermediate", "heads", "kv_heads",
                                 "head_dim", "vocab") if getattr(self, k) is not None)

    @property
    def given(self) -> bool:
        """True when the section names a target at all."""
        return bool(self.model or self.config or self.geometry or self.params)


@dataclass(frozen=True)
class SimConfig:
    """[sim]: run controls."""

    replications: int = field(default=1, metadata=_rng(1))
    baseline: bool = True  # also simulate target-only for speedup_vs_target_only


SECTIONS: dict[str, type] = {
    "workload": WorkloadConfig,
    "acceptance": AcceptanceConfig,
    "latency": LatencyConfig,
    "policy": PolicyConfig,
    "budget": BudgetConfig,
    "server": ServerConfig,
    "draft": DraftConfig,
    "sim": SimConfig,
    "target": TargetConfig,
}


@dataclass(frozen=True)
class Scenario:
    """A whole simulation scenario; build with :meth:`from_toml` / :meth:`from_dict`."""

    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    acceptance: AcceptanceConfig = field(default_factory=AcceptanceConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    draft: DraftConfig = field(default_factory=DraftConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    where: str = field(default="<dict>", compare=False)

    @classmethod
    def from_toml(cls, path: str | Path) -> Scenario:
        """Read and validate a scenario file."""
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SpecsimError(f"{where}: scenario file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecsimError(f"{where}: not valid TOML: {exc}") from None
        return cls.from_dict(data, where=where)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<dict>") -> Scenario:
        """Validate a TOML-shaped dict; every problem names the section and key."""
        if not isinstance(d, dict):
            raise SpecsimError(f"{where}: a scenario is a table of sections")
        parts: dict[str, Any] = {}
        for section, table in d.items():
            if section not in SECTIONS:
                raise SpecsimError(
                    f"{where}: unknown section [{section}] (known: {', '.join(SECTIONS)})"
                )
            if not isinstance(table, dict):
                raise SpecsimError(f"{where}: [{section}] must be a table")
            if section == "policy":
                parts[section] = _build_policy(table, where)
            elif section == "workload" and table.get("arrival") == "file":
                # lengths come from the arrivals file unless given
                # lengths and the count come from the arrivals file unless given
                table = {"prompt_tokens": "file", "output_tokens": "file", "requests": 0, **table}
                parts[section] = _build_section(SECTIONS[section], section, table, where)
            else:
                parts[section] = _build_section(SECTIONS[section], section, table, where)
        if "acceptance" in parts:
            parts["acceptance"] = _solve_acceptance(parts["acceptance"], where)
        scenario = cls(**parts, where=where)
        scenario._check_cross(where)
        return scenario

    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped dict (unset optional keys left out); ``from_dict`` reads it back."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            value = getattr(self, section)
            if section == "policy":
                out[section] = {"name": value.name, **copy.deepcopy(value.params)}
                continue
            table = {}
            for f in fields(value):
                v = getattr(value, f.name)
                if v is not None:
                    table[f.name] = copy.deepcopy(v)
            out[section] = table
        return out

    def to_toml(self) -> str:
        """The scenario as a TOML file (``from_toml`` reads it back); written beside outputs."""
        lines: list[str] = []
        for section, table in self.to_dict().items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
            lines.append("")
        return "\n".join(lines)

    def with_overrides(self, overrides: dict[str, Any], where: str | None = None) -> Scenario:
        """A validated copy with ``{"section.key": value}`` replaced (``whatif --vary``).

        String values are converted to the key's type (``"8"`` -> 8 for an int key), so values
        straight from a command line work. Setting ``workload.rate_per_s`` > 0 without
        ``workload.arrival`` switches arrivals to ``"poisson"``, setting ``workload.concurrency``
        (and no rate) switches them to ``"closed"``; setting ``acceptance.alpha`` of a
        ``"trace"`` acceptance model without ``acceptance.model`` switches it to ``"iid"``.
        """
        d = self.to_dict()
        for key, value in overrides.items():
            section, dot, name = key.partition(".")
            if not dot or section not in SECTIONS or not name:
                raise SpecsimError(
                    f"{where or self.where}: override '{key}': expected SECTION.KEY with a "
                    f"section among {', '.join(SECTIONS)}"
                )
            d[section][name] = _coerce(SECTIONS[section], name, value)
        # Varying alpha of a fitted ("trace") acceptance means an i.i.d. (or positional) model.
        acc = d["acceptance"]
        solved_from = ("mean_accepted_length", "accepted_per_draft", "tau")
        if "acceptance.alpha" in overrides and not any(  # a given alpha replaces them
                f"acceptance.{k}" in overrides for k in solved_from):
            for key in solved_from:
                acc.pop(key, None)
        alpha_only = "acceptance.alpha" in overrides and "acceptance.model" not in overrides
        if alpha_only and acc.get("model") == "trace":
            acc["model"] = "positional" if isinstance(acc["alpha"], list) else "iid"
            acc["per_request"] = acc["replay"] = False
        # Varying the rate of a closed or replayed workload means Poisson arrivals at that rate;
        # varying the concurrency of an open or replayed one means closed-loop users.
        rate = d["workload"].get("rate_per_s", 0.0)
        users_only = "workload.concurrency" in overrides and "workload.rate_per_s" not in overrides
        if "workload.arrival" in overrides:
            pass
        elif users_only:
            d["workload"]["arrival"] = "closed"
            d["workload"]["rate_per_s"] = 0.0
        elif isinstance(rate, int | float) and rate > 0:
            d["workload"]["arrival"] = "poisson"
        return Scenario.from_dict(d, where=where or self.where)

    def make_policy(self) -> Any:
        """A fresh policy object for this scenario, with the [budget] applied."""
        return build_policy(
            self.policy.name,
            self.policy.accepted_params(),
            max_verify=self.budget.max_verify_per_request,
            mean_verify=self.budget.mean_verify_per_request,
        )

    @property
    def needs_trace(self) -> bool:
        """True when some key reads from a trace ("trace" lengths, arrivals, acceptance, latency)."""
        w = self.workload
        return (
            "trace" in (w.prompt_tokens, w.output_tokens, w.arrival)
            or self.acceptance.model == "trace"
            or self.latency.model == "trace"
        )

    def _check_cross(self, where: str) -> None:
        w, a = self.workload, self.acceptance
        if w.arrival == "poisson" and w.rate_per_s <= 0:
            raise SpecsimError(f'{where}: [workload] arrival = "poisson" needs rate_per_s > 0')
        if w.arrival != "poisson" and w.rate_per_s > 0:
            raise SpecsimError(
                f'{where}: [workload] rate_per_s = {w.rate_per_s}: only with arrival = "poisson"'
            )
        self._check_file(where)
        if a.model == "iid" and isinstance(a.alpha, list):
            raise SpecsimError(
                f'{where}: [acceptance] alpha = {a.alpha}: model "iid" takes one number'
            )
        if a.model == "positional" and not isinstance(a.alpha, list):
            raise SpecsimError(
                f'{where}: [acceptance] alpha = {a.alpha}: model "positional" takes a list'
            )
        if isinstance(a.alpha, list) and not a.alpha:
            raise SpecsimError(f"{where}: [acceptance] alpha = []: the list is empty")
        if a.per_request and (a.model != "trace" or w.output_tokens != "trace"):
            raise SpecsimError(
                f'{where}: [acceptance] per_request = true: needs model = "trace" and '
                '[workload] output_tokens = "trace"'
            )
        buckets = a.context_buckets
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(buckets)):
            raise SpecsimError(
                f"{where}: [acceptance] context_buckets = {buckets}: must be increasing"
            )
        from sim.models.catalog import UnknownDevice, get_device, known  # local: no import circle
        from sim.models.costmodel import normalize_dtype

        for key in ("hardware", "source_hardware"):
            name = getattr(self.latency, key)
            if name:
                try:
                    get_device(name)
                except UnknownDevice:
                    raise SpecsimError(f'{where}: [latency] {key} = "{name}": unknown device '
                                       f"(known: {known()})") from None
        self._check_target(where)
        if self.latency.dtype:
            try:
                normalize_dtype(self.latency.dtype)
            except SpecsimError as exc:
                raise SpecsimError(f"{where}: [latency] {exc}") from None


    def _check_target(self, where: str) -> None:
        from sim.models.shapes import lookup, table_names  # local: the table

        t, d = self.target, self.draft
        named = [k for k, v in (("model", t.model), ("config", t.config),
                                ("layers/hidden/...", t.geometry)) if v]
        if len(named) > 1:
            raise SpecsimError(f"{where}: [target] gives {' and '.join(named)}: name the "
                               "target one way")
        if t.model:
            lookup(t.model, f"{where}: [target]")
        if d.model:
            lookup(d.model, f"{where}: [draft]")
            if d.layers or d.hidden or d.params:
                raise SpecsimError(f"{where}: [draft] model = \"{d.model}\" and layers/hidden/"
                                   "params: name the draft one way")
        if t.geometry:
            missing = [k for k in ("layers", "hidden", "heads", "vocab")
                       if getattr(t, k) is None]
            if missing:
                raise SpecsimError(f"{where}: [target] geometry needs {', '.join(missing)} too")
            if t.params is None and t.intermediate is None:
                raise SpecsimError(f"{where}: [target] geometry needs params or intermediate "
                                   "(to count the parameters)")
        if t.shape == "assumed" and (t.model or t.config or t.geometry):
            raise SpecsimError(f'{where}: [target] shape = "assumed": only with a parameter '
                               "count alone (the shape is given)")
        params_only = (t.params and not (t.model or t.config or t.geometry))
        if params_only and t.shape != "assumed":
            raise SpecsimError(f"{where}: [target] params = {t.params:g} alone does not say "
                               "the shape (layers x width decide a pass's cost): give model = "
                               f'NAME (known: {table_names()}), config = "config.json" or '
                               'layers/hidden/heads/kv_heads/head_dim/vocab; or shape = '
                               '"assumed" to guess it from SmolLM2\'s proportions')

    def _check_file(self, where: str) -> None:
        w = self.workload
        if w.arrival == "file" and not w.arrivals_file:
            raise SpecsimError(f'{where}: [workload] arrival = "file" needs arrivals_file = "PATH" '
                               "(an Azure LLM trace CSV, a Mooncake JSONL or a specsim trace)")
        if w.arrival != "file":
            if w.requests < 1:
                raise SpecsimError(f"{where}: [workload] requests = {w.requests}: must be >= 1 "
                                   '(0, "every request of the file", only with arrival = "file")')
            if w.arrivals_file:
                raise SpecsimError(f'{where}: [workload] arrivals_file = "{w.arrivals_file}": '
                                   'only with arrival = "file"')
            for key in ("prompt_tokens", "output_tokens"):
                if getattr(w, key) == "file":
                    raise SpecsimError(f'{where}: [workload] {key} = "file": only with '
                                       'arrival = "file"')
        if w.rate_scale <= 0:
            raise SpecsimError(f"{where}: [workload] rate_scale = {w.rate_scale:g}: must be > 0")


def expected_accepted(alpha: float, tau: int) -> float:
    """Accepted tokens per draft of ``tau`` tokens at i.i.d. acceptance ``alpha``:
    ``alpha + alpha^2 + ... + alpha^tau``."""
    return float(sum(alpha**k for k in range(1, tau + 1)))


def solve_alpha(accepted_per_draft: float, tau: int) -> float:
    """The i.i.d. alpha whose draft of ``tau`` tokens accepts ``accepted_per_draft`` on
    average (the inverse of :func:`expected_accepted`, increasing in alpha; 0..tau)."""
    from scipy.optimize import brentq

    if accepted_per_draft <= 0:
        return 0.0
    if accepted_per_draft >= tau:
        return 1.0
    return float(brentq(lambda a: expected_accepted(a, tau) - accepted_per_draft, 0.0, 1.0,
                        xtol=1e-12))


def _solve_acceptance(a: AcceptanceConfig, where: str) -> AcceptanceConfig:
    """``alpha`` from ``mean_accepted_length`` / ``accepted_per_draft`` at ``tau`` (model iid);
    ``by_context`` checked (and its first alpha the model's ``alpha``)."""
    w = f"{where}: [acceptance]"
    if a.by_context:
        rows = a.by_context
        if not all(len(r) == 2 for r in rows):
            raise SpecsimError(f"{w} by_context = {rows}: each entry is [from_tokens, alpha]")
        starts = [r[0] for r in rows]
        if starts[0] != 0:
            raise SpecsimError(f"{w} by_context = {rows}: the first entry starts at 0 tokens")
        if any(b <= x for x, b in itertools.pairwise(starts)):
            raise SpecsimError(f"{w} by_context = {rows}: from_tokens must be increasing")
        if any(not 0.0 <= r[1] <= 1.0 for r in rows):
            raise SpecsimError(f"{w} by_context = {rows}: each alpha must be in [0, 1]")
        if a.model == "trace":
            raise SpecsimError(f'{w} by_context: not with model = "trace" (it fits its own '
                               "context_buckets)")
    given = [k for k in ("mean_accepted_length", "accepted_per_draft")
             if getattr(a, k) is not None]
    if not given:
        if a.tau is not None:
            raise SpecsimError(f"{w} tau = {a.tau}: only with mean_accepted_length or "
                               "accepted_per_draft (the draft length they were measured at)")
        return a
    if len(given) > 1:
        raise SpecsimError(f"{w} mean_accepted_length and accepted_per_draft: give one")
    if a.tau is None:
        raise SpecsimError(f"{w} {given[0]}: needs tau = N, the draft length it was measured at "
                           "(vLLM's num_speculative_tokens)")
    if a.model == "trace" or a.by_context:
        raise SpecsimError(f"{w} {given[0]}: an i.i.d. acceptance; not with "
                           + ('model = "trace"' if a.model == "trace" else "by_context"))
    per_draft = (a.mean_accepted_length - 1.0 if a.mean_accepted_length is not None
                 else float(a.accepted_per_draft or 0.0))
    value = getattr(a, given[0])
    if per_draft > a.tau:
        top = a.tau + 1 if given[0] == "mean_accepted_length" else a.tau
        raise SpecsimError(f"{w} {given[0]} = {value:g}: at most {top} with tau = {a.tau}")
    return dataclasses.replace(a, model="iid", alpha=round(solve_alpha(per_draft, a.tau), 6))


def acceptance_note(a: AcceptanceConfig) -> str:
    """What an acceptance given as a server's figure was solved to ("" when given as alpha)."""
    if a.mean_accepted_length is not None:
        return (f"[acceptance] mean_accepted_length {a.mean_accepted_length:g} at tau {a.tau} "
                f"-> i.i.d. alpha {a.alpha:.4f}")
    if a.accepted_per_draft is not None:
        return (f"[acceptance] accepted_per_draft {a.accepted_per_draft:g} at tau {a.tau} "
                f"-> i.i.d. alpha {a.alpha:.4f}")
    return ""


def _toml_value(value: Any) -> str:
    """One TOML value: strings, booleans, numbers, lists and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def policy_keys(name: str) -> set[str]:
    """The parameters the named policy takes (its constructor's arguments)."""
    return _policy_keys(name)


def _policy_keys(name: str) -> set[str]:
    cls = POLICIES.get(name)
    if cls is None:
        return set()
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _build_policy(table: dict[str, Any], where: str) -> PolicyConfig:
    params = dict(table)
    name = params.pop("name", "fixed")
    if isinstance(name, str) and name not in POLICIES:
        from sim.policies.user import is_user_policy, load_user_policy

        if is_user_policy(name):
            try:
                load_user_policy(name, POLICIES)
            except SpecsimError as exc:
                raise SpecsimError(f"{where}: [policy] name: {exc}") from None
    if not isinstance(name, str) or name not in POLICIES:
        raise SpecsimError(
            f"{where}: [policy] name = {name!r}: unknown (known: {', '.join(sorted(POLICIES))})"
        )
    all_keys = set().union(*(_policy_keys(n) for n in POLICIES if n == name
                             or ".py:" not in n))
    for key in params:
        if key not in all_keys:
            raise SpecsimError(
                f"{where}: [policy] {key}: unknown key (known: {', '.join(sorted(all_keys))})"
            )
    config = PolicyConfig(name=name, params=params)
    try:
        build_policy(name, config.accepted_params())
    except SpecsimError as exc:
        raise SpecsimError(f"{where}: [policy] {exc}") from None
    return config


def _build_section(cls: type, section: str, table: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        f = known.get(key)
        if f is None:
            raise SpecsimError(
                f"{where}: [{section}] {key}: unknown key (known: {', '.join(known)})"
            )
        kwargs[key] = _check_value(f, value, f"{where}: [{section}] {key} = {_show(value)}")
    return cls(**kwargs)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _check_value(f: dataclasses.Field, value: Any, what: str) -> Any:
    meta = f.metadata
    kind = str(f.type)
    if meta.get("tokens"):
        return _check_tokens(value, what)
    if kind in ("bool", "bool | None"):
        if not isinstance(value, bool):
            raise SpecsimError(f"{what}: must be true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise SpecsimError(f"{what}: must be a string")
        if "choices" in meta and value not in meta["choices"]:
            raise SpecsimError(f"{what}: must be one of {', '.join(meta['choices'])}")
        return value
    if kind == "list[list[float]]":
        if not isinstance(value, list) or not all(isinstance(r, list) and r for r in value):
            raise SpecsimError(f"{what}: must be a list of non-empty lists of numbers")
        if len({len(r) for r in value}) > 1:
            raise SpecsimError(f"{what}: every row must have the same length")
        for row in value:
            _check_numbers(row, meta, False, what)
        return [[float(x) for x in row] for row in value]
    items = value if isinstance(value, list) and "list" in kind else [value]
    if isinstance(value, list) and "list" not in kind:
        raise SpecsimError(f"{what}: must be a number, not a list")
    if not isinstance(value, list) and kind.startswith("list"):
        raise SpecsimError(f"{what}: must be a list")
    want_int = kind in ("int", "list[int]", "int | None")
    _check_numbers(items, meta, want_int, what)
    if isinstance(value, list):
        return list(value)
    return value if want_int else float(value)


def _check_numbers(items: list[Any], meta: Any, want_int: bool, what: str) -> None:
    """Every item a finite number (an integer with ``want_int``) within the field's range."""
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise SpecsimError(f"{what}: must be {'an integer' if want_int else 'a number'}")
        if want_int and not isinstance(item, int):
            raise SpecsimError(f"{what}: must be an integer")
        if not math.isfinite(item):
            raise SpecsimError(f"{what}: must be finite")
        lo, hi = meta.get("range", (None, None))
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            bound = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
            raise SpecsimError(f"{what}: must be {bound}")


def _check_tokens(value: Any, what: str) -> TokenSpec:
    if isinstance(value, bool):
        raise SpecsimError(f'{what}: must be a token count, "trace" or a distribution')
    if isinstance(value, int):
        if value < 1:
            raise SpecsimError(f"{what}: must be >= 1")
        return value
    if isinstance(value, str):
        if value not in ("trace", "file"):
            raise SpecsimError(f'{what}: the only strings allowed are "trace" and "file"')
        return value
    if not isinstance(value, dict):
        raise SpecsimError(f'{what}: must be a token count, "trace" or a distribution')
    dist = value.get("dist")
    if dist not in DIST_KEYS:
        raise SpecsimError(f"{what}: dist must be one of {', '.join(DIST_KEYS)}")
    extra = set(value) - DIST_KEYS[dist] - {"dist"}
    if extra:
        raise SpecsimError(f'{what}: unknown key {sorted(extra)[0]} for dist "{dist}"')
    need = {"lognormal": ("mean", "sigma"), "uniform": ("low", "high"), "choice": ("values",)}
    for key in need[dist]:
        if key not in value:
            raise SpecsimError(f'{what}: dist "{dist}" needs {key}')
    nums = [v for k, v in value.items() if k != "dist" for v in (v if isinstance(v, list) else [v])]
    if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in nums):
        raise SpecsimError(f"{what}: distribution parameters must be non-negative numbers")
    if dist == "lognormal" and value["mean"] < 1:
        raise SpecsimError(f"{what}: mean must be >= 1")
    if dist == "uniform" and not 1 <= value["low"] <= value["high"]:
        raise SpecsimError(f"{what}: needs 1 <= low <= high")
    if dist == "choice":
        values = value["values"]
        if not isinstance(values, list) or not values or min(values) < 1:
            raise SpecsimError(f"{what}: values must be a non-empty list of counts >= 1")
        weights = value.get("weights")
        if weights is not None and (
            not isinstance(weights, list) or len(weights) != len(values) or sum(weights) <= 0
        ):
            raise SpecsimError(f"{what}: weights must match values and sum to > 0")
    return dict(value)


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a command-line string to the type of ``cls.name`` (unknown keys pass through)."""
    if not isinstance(value, str):
        return value
    f = {f.name: f for f in fields(cls)}.get(name)
    kind = str(f.type) if f is not None else "policy"
    if kind == "str" or value in ("trace", "file"):
        return value
    if value.lower() in ("true", "false") and kind in ("bool", "policy"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
