"""The scenario's sections: one frozen dataclass per TOML table, with each key's type, default,
range and choices (the metadata :mod:`sim.scenario_checks` validates against and
:mod:`sim.scenario_doc` documents), and :data:`SECTIONS`, the table name -> dataclass map.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from sim.policies.library import POLICIES

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
        known = policy_keys(self.name)
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


def policy_keys(name: str) -> set[str]:
    """The parameters the named policy takes (its constructor's arguments)."""
    cls = POLICIES.get(name)
    if cls is None:
        return set()
    return set(inspect.signature(cls.__init__).parameters) - {"self"}
