"""Synthetic traces with one planted bottleneck each, plus a healthy one.

Used by the diagnosis tests, the report tests and ``specsim demo``. Each generator runs a small
single-stream decoder model -- arrivals, prefill, cycles of ``tau`` draft steps and one verify
pass, left-to-right acceptance -- with one seeded ``numpy.random.Generator``, so the same seed
gives the same trace. The numbers are those of a ~1B target with a ~100M draft on a GPU
(20 ms per target step, 1.5 ms per draft step, verify nearly flat in tau) unless the planted
fault says otherwise. Metadata: ``RunMeta(source="sim", extra={"synthetic": True,
"planted": KIND})``.

Sampling runs log ``draft_prob`` q(x) and ``target_prob`` p(x) of each drafted token; an honest
run accepts token i with probability min(1, p/q), the ``suspicious_acceptance`` one ignores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tracing import CycleRecord, RequestRecord, RunMeta, Trace
from tracing.errors import SpecsimError


@dataclass(frozen=True)
class PlantSpec:
    """The knobs of a synthetic run (seconds, tokens)."""

    requests: int = 120
    seed: int = 0
    prompt_tokens: tuple[int, int] = (64, 512)  # uniform range
    output_tokens: tuple[int, int] = (96, 256)
    tau: int = 4
    adaptive_tau: bool = False  # transformers' heuristic schedule (+2 on a full accept, else -1)
    max_tau: int = 12
    alpha: float = 0.8  # chance each drafted token is accepted (short contexts)
    collapse_from_tokens: int = 0  # > 0: alpha falls linearly past this context length ...
    collapse_alpha: float = 0.8  # ... down to this at twice that length
    fake_alpha: float | None = None  # accept with this chance whatever p/q say (a bug)
    log_probs: bool = False
    temperature: float = 0.0
    target_step_s: float = 0.020
    verify_slope_s: float = 0.0003  # extra seconds per extra token scored in one pass
    draft_step_s: float = 0.0015
    overhead_s: float = 0.0005
    prefill_s_per_token: float = 0.00004
    rate_per_s: float = 0.0  # 0: closed (each request arrives as the previous one ends)
    max_verify: int = 0  # hard cap of verify passes per request (0 = none)
    noise: float = 0.05  # lognormal sigma on every duration
    warmup_requests: int = 0  # the first requests run slower (a live run not warmed up) ...
    warmup_factor: float = 1.0  # ... every step of theirs this many times the normal duration

    def __post_init__(self) -> None:
        if self.requests < 1 or self.tau < 0 or not 0.0 <= self.alpha <= 1.0:
            raise SpecsimError(f"PlantSpec: bad values {self}")


def _alpha_at(spec: PlantSpec, context: int) -> float:
    if spec.collapse_from_tokens <= 0 or context <= spec.collapse_from_tokens:
        return spec.alpha
    frac = min(1.0, (context - spec.collapse_from_tokens) / spec.collapse_from_tokens)
    return spec.alpha + frac * (spec.collapse_alpha - spec.alpha)


def _ratios(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    """min(1, p/q) per drafted token, with mean ``alpha``: 1 with some chance, else Beta."""
    if alpha >= 0.5:
        full = rng.random(n) < (alpha - 0.5) / 0.5
        return np.where(full, 1.0, rng.beta(2.0, 2.0, n))
    k = 4.0
    return rng.beta(max(alpha * k, 1e-3), max((1.0 - alpha) * k, 1e-3), n)


def _jitter(rng: np.random.Generator, spec: PlantSpec, seconds: float) -> float:
    return float(seconds * rng.lognormal(0.0, spec.noise)) if spec.noise > 0 else seconds


def generate(spec: PlantSpec, planted: str = "none") -> Trace:
    """A synthetic trace from ``spec``; ``planted`` is written into ``meta.extra``."""
    rng = np.random.default_rng(spec.seed)
    n = spec.requests
    prompts = rng.integers(spec.prompt_tokens[0], spec.prompt_tokens[1] + 1, n)
    outputs = rng.integers(spec.output_tokens[0], spec.output_tokens[1] + 1, n)
    gaps = rng.exponential(1.0 / spec.rate_per_s, n) if spec.rate_per_s > 0 else None
    requests: list[RequestRecord] = []
    cycles: list[CycleRecord] = []
    free = 0.0  # when the server is next idle
    arrival = 0.0
    for rid in range(n):
        arrival = arrival + float(gaps[rid]) if gaps is not None else free
        start = max(arrival, free)
        prefill = _jitter(rng, spec, spec.prefill_s_per_token * int(prompts[rid]))
        t = start + prefill
        context, done, passes = int(prompts[rid]), 0, 0
        tau_now, first_token = spec.tau, -1.0
        slow = spec.warmup_factor if rid < spec.warmup_requests else 1.0
        while done < outputs[rid] and not (spec.max_verify and passes >= spec.max_verify):
            left = int(outputs[rid]) - done
            tau = max(0, min(tau_now, left - 1))
            alpha = _alpha_at(spec, context)
            ratio = _ratios(rng, alpha, tau)
            accept_p = ratio if spec.fake_alpha is None else np.full(tau, spec.fake_alpha)
            rejected = np.flatnonzero(rng.random(tau) >= accept_p)
            accepted = int(rejected[0]) if rejected.size else tau
            emitted = min(accepted + 1, left)
            draft_s = _jitter(rng, spec, spec.draft_step_s * tau) * slow
            verify_s = _jitter(rng, spec, spec.target_step_s + spec.verify_slope_s * tau) * slow
            overhead_s = _jitter(rng, spec, spec.overhead_s) * slow
            q = p = None
            if spec.log_probs and tau:
                q_arr = rng.beta(6.0, 2.0, tau)
                # p/q = ratio where ratio < 1; above q (up to 1) where the ratio was capped at 1.
                p_arr = np.where(ratio < 1.0, ratio * q_arr, q_arr + (1 - q_arr) * rng.random(tau))
                q, p = q_arr.round(6).tolist(), p_arr.round(6).tolist()
            cycles.append(
                CycleRecord(rid, passes, t, tau, accepted, emitted, draft_s, verify_s,
                            overhead_s, context, draft_prob=q, target_prob=p)
            )
            t += draft_s + verify_s + overhead_s
            if first_token < 0:
                first_token = t
            done += emitted
            context += emitted
            passes += 1
            if spec.adaptive_tau and tau:
                tau_now = min(spec.max_tau, tau_now + 2) if accepted == tau else max(1, tau_now - 1)
        free = t
        requests.append(
            RequestRecord(rid, arrival, start, first_token if first_token >= 0 else t, t,
                          int(prompts[rid]), done, prefill, passes)
        )
    policy_params: dict[str, object] = {"tau": spec.tau}
    if spec.max_verify:
        policy_params["max_verify"] = spec.max_verify
    meta = RunMeta(
        source="sim",
        target_model="synthetic-1b",
        draft_model="synthetic-100m",
        device="synthetic",
        temperature=spec.temperature,
        seed=spec.seed,
        policy="heuristic" if spec.adaptive_tau else "fixed",
        policy_params=policy_params,
        extra={"synthetic": True, "planted": planted, "max_new_tokens": spec.output_tokens[1],
               "plant_spec": dataclasses.asdict(spec)},
    )
    return Trace.from_records(meta, requests, cycles)


# One spec per planted kind; each changes few knobs of the healthy run.
HEALTHY = PlantSpec(log_probs=True, temperature=0.7)

PLANTED: dict[str, PlantSpec] = {
    "healthy": HEALTHY,
    # A draft a third as fast as the target: drafting eats most of each cycle.
    "draft_bound": dataclasses.replace(HEALTHY, draft_step_s=0.008, tau=5),
    # tau = 12 at alpha = 0.55: the first rejection comes after ~1 token.
    "over_speculation": dataclasses.replace(HEALTHY, tau=12, alpha=0.6),
    # CPU-like verify: each extra token scored costs 40% of a one-token pass.
    "verify_not_parallel": dataclasses.replace(
        HEALTHY, verify_slope_s=0.008, adaptive_tau=True, tau=4
    ),
    # At most 30 verify passes per request: outputs of ~180 tokens need ~55.
    "budget_bound": dataclasses.replace(HEALTHY, max_verify=30),
    # Poisson arrivals at ~90% utilisation: the p95 is mostly waiting.
    "queueing_bound": dataclasses.replace(HEALTHY, rate_per_s=0.58, requests=200),
    # Acceptance 0.85 up to 1,000 tokens of context, 0.2 from 2,000.
    "long_context_collapse": dataclasses.replace(
        HEALTHY, prompt_tokens=(200, 2600), alpha=0.85, collapse_from_tokens=1000,
        collapse_alpha=0.2, output_tokens=(128, 384)
    ),
    # The verifier accepts 95% of drafts while p/q allow ~60%: the "fast but wrong" bug.
    "suspicious_acceptance": dataclasses.replace(HEALTHY, alpha=0.6, fake_alpha=0.95),
    # A weak, slow draft: acceptance 0.3 at a draft cost of 0.3 target steps.
    "speculation_not_paying": dataclasses.replace(
        HEALTHY, alpha=0.3, draft_step_s=0.006, tau=3
    ),
    # A live run not warmed up: the first 8 requests' steps take 2.5x as long as the rest's.
    "unstable_timing": dataclasses.replace(HEALTHY, warmup_requests=8, warmup_factor=2.5),
}


def planted_trace(kind: str, *, seed: int = 0, requests: int | None = None) -> Trace:
    """The synthetic trace with ``kind`` planted ("healthy" for none)."""
    spec = PLANTED.get(kind)
    if spec is None:
        raise SpecsimError(f"unknown planted kind '{kind}' (known: {', '.join(PLANTED)})")
    spec = dataclasses.replace(spec, seed=seed, requests=requests or spec.requests)
    return generate(spec, planted=kind)


def healthy_trace(*, seed: int = 0, requests: int | None = None) -> Trace:
    """A well-tuned run: no bottleneck worth reporting."""
    return planted_trace("healthy", seed=seed, requests=requests)


PLANTED_KINDS: tuple[str, ...] = tuple(k for k in PLANTED if k != "healthy")

TraceFactory = Callable[..., Trace]

__all__ = [
    "HEALTHY",
    "PLANTED",
    "PLANTED_KINDS",
    "PlantSpec",
    "TraceFactory",
    "generate",
    "healthy_trace",
    "planted_trace",
]
