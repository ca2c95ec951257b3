"""Metrics of a trace, defined once: name, formula, unit, meaning (vLLM's words where they exist).

:data:`METRICS` is the registry the report and the docs print; :func:`compute_metrics` computes
them all, vectorised (a million cycles in seconds), into one JSON-able dict. What
:func:`tracing.summarize` already computes is taken from there, not recomputed.

"Spec cycles" are cycles with ``tau > 0``; every cycle is one target verify pass. The estimated
target-only cost of a token is ``t1 = verify(1 token) + overhead``: the mean verify of the
trace's own ``tau = 0`` cycles when it has at least :data:`MIN_TARGET_ONLY_CYCLES` of them, else
the fit ``verify_s ~ a + b * (tau + 1) + k * context_tokens`` evaluated at one token scored and
the mean context. Where tau never varies, ``b`` cannot be fitted and is taken as 0 (the
estimate then errs on the slow side, i.e. the speedup is flattered; ``verify_fit.tau_levels``
says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tracing import Trace, percentiles, split_known, summarize

MIN_TARGET_ONLY_CYCLES = 10
CONTEXT_BUCKETS = 5  # quantile buckets of context_tokens
MIN_BUCKET_CYCLES = 30


@dataclass(frozen=True)
class Metric:
    """One metric: its key in :func:`compute_metrics`'s dict, formula, unit and meaning."""

    name: str
    formula: str
    unit: str
    description: str


METRICS: tuple[Metric, ...] = (
    Metric("draft_acceptance_rate", "sum(accepted) / sum(tau)", "ratio",
           "vLLM's draft acceptance rate: share of drafted tokens the target accepted"),
    Metric("mean_acceptance_length", "1 + sum(accepted) / spec cycles", "tokens",
           "vLLM's mean acceptance length: tokens per verify pass of a spec cycle"),
    Metric("system_efficiency", "sum(emitted) / sum(tau + 1) over spec cycles", "ratio",
           "vLLM's system efficiency: emitted tokens over the most a cycle could emit"),
    Metric("acceptance_by_position", "#(accepted >= i) / #(tau >= i)", "ratio per position",
           "vLLM's per-position acceptance rate of the i-th drafted token"),
    Metric("acceptance_hazard_by_position", "#(accepted >= i) / #(accepted >= i-1, tau >= i)",
           "ratio per position",
           "censoring-aware: chance position i is accepted given it was reached"),
    Metric("mean_accepted", "mean(accepted) over spec cycles", "tokens",
           "mean accepted prefix of a draft"),
    Metric("full_accept_fraction", "#(accepted == tau) / spec cycles", "ratio",
           "share of drafts accepted whole (the target adds a bonus token)"),
    Metric("tokens_per_cycle", "mean(emitted) over spec cycles", "tokens",
           "tokens a speculative cycle appends"),
    Metric("tokens_per_verify_pass", "sum(emitted) / cycles", "tokens",
           "tokens per target forward pass after prefill, target-only steps included"),
    Metric("wasted_draft_tokens", "sum(tau - accepted)", "tokens",
           "drafted tokens thrown away at the first rejection"),
    Metric("wasted_draft_fraction", "sum(tau - accepted) / sum(tau)", "ratio",
           "share of drafting that was thrown away"),
    Metric("wasted_draft_s", "sum(draft_s * (tau - accepted) / tau)", "s",
           "draft time spent on tokens that were thrown away"),
    Metric("time_share", "phase seconds / sum(end_s - arrival_s)", "ratio per phase",
           "where request time goes: queue, prefill, draft, verify, overhead, other"),
    Metric("cycle_time_share", "phase seconds / sum(draft + verify + overhead)", "ratio per phase",
           "where cycle time goes: draft, verify, overhead"),
    Metric("verify_fit", "verify_s ~ intercept + slope * (tau + 1) + k * context_tokens", "s",
           "verify cost model; ratio = slope / (intercept + slope), 0 = perfectly parallel"),
    Metric("mean_accepted_fraction", "mean(accepted / tau) over spec cycles", "ratio",
           "how far into a draft the first rejection comes, on average"),
    Metric("target_only_token_s", "verify(1 token) + overhead", "s",
           "estimated cost of one target-only decoding step (see module docstring)"),
    Metric("speedup_vs_target_only",
           "sum(prefill + output * target_only_token_s) / sum(prefill + cycle seconds)", "x",
           "service-time speedup of speculation over target-only decoding (no queueing)"),
    Metric("verify_passes_per_request", "mean(verify_passes)", "passes",
           "target forward passes after prefill per request"),
    Metric("latency_s", "end_s - arrival_s", "s", "request latency (mean, p50, p95, p99)"),
    Metric("queue_s", "start_s - arrival_s", "s", "time waiting before admission"),
    Metric("ttft_s", "first_token_s - arrival_s", "s", "time to first token"),
    Metric("tpot_s", "(end_s - first_token_s) / (output_tokens - 1)", "s",
           "time per output token after the first"),
    Metric("context_buckets", "the above per quantile bucket of context_tokens", "per bucket",
           "how acceptance and costs change with context length"),
)


def metric(name: str) -> Metric:
    """The registry entry of ``name`` (KeyError when unknown)."""
    for m in METRICS:
        if m.name == name:
            return m
    raise KeyError(name)


def _lstsq(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares coefficients and R^2."""
    x = np.column_stack(columns)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    return coef, r2


def fit_verify(cycles: pd.DataFrame) -> dict[str, Any]:
    """``verify_s ~ intercept + slope * (tau + 1) + context_slope * context_tokens``.

    Terms whose regressor is constant are dropped (coefficient 0); negative slopes are clipped
    to 0 and refitted without them. ``ratio`` = slope / (intercept + slope): the extra cost of
    one more scored token relative to a one-token pass (0 = perfectly parallel verification).
    """
    y = cycles["verify_s"].to_numpy(float)
    tokens = cycles["tau"].to_numpy(float) + 1.0
    ctx = cycles["context_tokens"].to_numpy(float)
    levels = int(np.unique(tokens).size) if tokens.size else 0
    use_tau = levels > 1
    use_ctx = ctx.size > 1 and ctx.std() > 0
    a = b = k = 0.0
    r2 = 0.0
    if y.size:
        for _ in range(3):
            cols = [np.ones_like(y)]
            if use_tau:
                cols.append(tokens)
            if use_ctx:
                cols.append(ctx)
            coef, r2 = _lstsq(cols, y)
            a = float(coef[0])
            b = float(coef[1]) if use_tau else 0.0
            k = float(coef[-1]) if use_ctx else 0.0
            if use_tau and b < 0:
                use_tau = False
            elif use_ctx and k < 0:
                use_ctx = False
            else:
                break
    one = a + b  # a pass scoring one token (context term added by callers)
    return {
        "intercept_s": a,
        "slope_s_per_token": b,
        "context_s_per_token": k,
        "one_token_s": one,
        "ratio": b / one if one > 0 else 0.0,
        "r2": r2,
        "tau_levels": max(0, levels),
    }


def _target_only_token_s(cycles: pd.DataFrame, fit: dict[str, Any]) -> tuple[float, str]:
    overhead = float(cycles["overhead_s"].mean()) if len(cycles) else 0.0
    plain = cycles["tau"].to_numpy() == 0
    if plain.sum() >= MIN_TARGET_ONLY_CYCLES:
        return float(cycles["verify_s"].to_numpy()[plain].mean()) + overhead, "measured tau=0"
    ctx = float(cycles["context_tokens"].mean()) if len(cycles) else 0.0
    verify1 = fit["one_token_s"] + fit["context_s_per_token"] * ctx
    return max(verify1, 0.0) + overhead, "fit"


def context_buckets(cycles: pd.DataFrame, buckets: int = CONTEXT_BUCKETS) -> list[dict[str, Any]]:
    """Acceptance and costs per quantile bucket of ``context_tokens`` (spec cycles only)."""
    spec = cycles[cycles["tau"].to_numpy() > 0]
    if len(spec) < MIN_BUCKET_CYCLES:
        return []
    ctx = spec["context_tokens"].to_numpy()
    edges = np.unique(np.quantile(ctx, np.linspace(0, 1, buckets + 1)).round().astype(np.int64))
    if edges.size < 2:
        edges = np.array([ctx.min(), ctx.max() + 1])
    which = np.clip(np.searchsorted(edges, ctx, side="right") - 1, 0, edges.size - 2)
    tau = spec["tau"].to_numpy(float)
    cols = {
        "tau": tau,
        "accepted": spec["accepted"].to_numpy(float),
        "emitted": spec["emitted"].to_numpy(float),
        "verify_s": spec["verify_s"].to_numpy(float),
        "draft_s": spec["draft_s"].to_numpy(float),
        "cycle_s": (spec["draft_s"] + spec["verify_s"] + spec["overhead_s"]).to_numpy(float),
    }
    m = edges.size - 1
    count = np.bincount(which, minlength=m)
    sums = {k: np.bincount(which, weights=v, minlength=m) for k, v in cols.items()}
    out = []
    for i in range(m):
        if count[i] == 0:
            continue
        n = float(count[i])
        out.append({
            "context_lo": int(edges[i]),
            "context_hi": int(edges[i + 1]),
            "cycles": int(count[i]),
            "acceptance_rate": float(sums["accepted"][i] / sums["tau"][i]) if sums["tau"][i] else 0.0,
            "mean_accepted": float(sums["accepted"][i] / n),
            "tokens_per_cycle": float(sums["emitted"][i] / n),
            "verify_s_mean": float(sums["verify_s"][i] / n),
            "draft_s_mean": float(sums["draft_s"][i] / n),
            "cycle_s_mean": float(sums["cycle_s"][i] / n),
            "s_per_token": float(sums["cycle_s"][i] / sums["emitted"][i]) if sums["emitted"][i] else 0.0,
        })
    return out


def tau_curve(metrics: dict[str, Any], max_tau: int | None = None) -> list[dict[str, float]]:
    """Expected tokens per second of a fixed draft length, tau = 0..max_tau, from the measured
    censoring-aware hazard and costs (single stream): tokens(tau) = 1 + sum_k prod_{j<=k} h_j,
    seconds(tau) = tau * draft_step_s + verify(tau + 1) + overhead (tau = 0: target-only).
    Positions never drafted reuse the last measured hazard."""
    hazard = list(metrics.get("acceptance_hazard_by_position") or [])
    costs, fit = metrics["costs"], metrics["verify_fit"]
    top = max_tau if max_tau is not None else len(hazard)
    context = fit["context_s_per_token"] * metrics.get("mean_context_tokens", 0.0)
    overhead = costs["overhead_s_mean"]
    rows = [{"tau": 0.0, "tokens_per_cycle": 1.0, "cycle_s": costs["target_only_token_s"],
             "tokens_per_s": 1.0 / costs["target_only_token_s"] if costs["target_only_token_s"] > 0 else 0.0}]
    survive, tokens = 1.0, 1.0
    for tau in range(1, top + 1):
        h = hazard[tau - 1] if tau <= len(hazard) else (hazard[-1] if hazard else 0.0)
        survive *= h
        tokens += survive
        verify = max(fit["intercept_s"] + fit["slope_s_per_token"] * (tau + 1), 0.0) + context
        seconds = tau * costs["draft_step_s"] + verify + overhead
        rows.append({"tau": float(tau), "tokens_per_cycle": tokens, "cycle_s": seconds,
                     "tokens_per_s": tokens / seconds if seconds > 0 else 0.0})
    return rows


def _per_request_cycle_s(trace: Trace) -> np.ndarray:
    """Seconds of cycles (draft + verify + overhead) per request, in the requests' row order."""
    c, r = trace.cycles, trace.requests
    ids = r["request_id"].to_numpy()
    if len(c) == 0 or len(r) == 0:  # (cycles of requests whose lines never came: no row)
        return np.zeros(len(r))
    order = np.argsort(ids, kind="stable")
    cid = c["request_id"].to_numpy()
    pos = np.clip(np.searchsorted(ids[order], cid), 0, len(ids) - 1)
    known = ids[order][pos] == cid  # a cycle of a request without a request line counts nowhere
    cyc = (c["draft_s"] + c["verify_s"] + c["overhead_s"]).to_numpy(float)
    sums = np.bincount(order[pos][known], weights=cyc[known], minlength=len(r))
    return sums


def compute_metrics(trace: Trace) -> dict[str, Any]:
    """Every metric of :data:`METRICS` (plus the trace summary) as one JSON-able dict."""
    out = summarize(trace)
    c, r = trace.cycles, trace.requests
    tau = c["tau"].to_numpy()
    accepted = c["accepted"].to_numpy()
    draft_s = c["draft_s"].to_numpy(float)
    spec = tau > 0
    n_spec = int(spec.sum())
    drafted = int(tau.sum())
    wasted = tau - accepted
    out["full_accept_fraction"] = float((accepted[spec] == tau[spec]).mean()) if n_spec else 0.0
    out["mean_accepted_fraction"] = float((accepted[spec] / tau[spec]).mean()) if n_spec else 0.0
    out["tokens_per_verify_pass"] = float(c["emitted"].sum() / len(c)) if len(c) else 0.0
    out["wasted_draft_tokens"] = int(wasted.sum())
    out["wasted_draft_fraction"] = float(wasted.sum() / drafted) if drafted else 0.0
    out["wasted_draft_s"] = float((draft_s[spec] * wasted[spec] / tau[spec]).sum()) if n_spec else 0.0

    # Time shares of the summed request latency.
    queue = (r["start_s"] - r["arrival_s"]).to_numpy(float)
    latency = (r["end_s"] - r["arrival_s"]).to_numpy(float)
    prefill = r["prefill_s"].to_numpy(float)
    phases = {
        "queue": float(queue.sum()),
        "prefill": float(prefill.sum()),
        "draft": float(draft_s.sum()),
        "verify": float(c["verify_s"].sum()),
        "overhead": float(c["overhead_s"].sum()),
    }
    total = float(latency.sum())
    phases["other"] = max(0.0, total - sum(phases.values()))
    out["time_s"] = phases
    out["time_share"] = {k: (v / total if total > 0 else 0.0) for k, v in phases.items()}
    out["queue_s"] = percentiles(queue)

    # Costs and the estimated speedup over target-only decoding.
    fit = fit_verify(c)
    t1, how = _target_only_token_s(c, fit)
    cycle_s = _per_request_cycle_s(trace)
    out_tokens = r["output_tokens"].to_numpy(float)
    spec_service = float((prefill + cycle_s).sum())
    plain_service = float((prefill + out_tokens * t1).sum())
    draft_step = float(draft_s[spec].sum() / tau[spec].sum()) if n_spec else 0.0
    out["verify_fit"] = fit
    out["mean_context_tokens"] = float(c["context_tokens"].mean()) if len(c) else 0.0
    out["costs"] = {
        "draft_step_s": draft_step,
        "target_only_token_s": t1,
        "target_only_source": how,
        "draft_to_target_cost": draft_step / t1 if t1 > 0 else 0.0,
        "cycle_s_mean": float(cycle_s.sum() / len(c)) if len(c) else 0.0,
        "s_per_output_token": float(cycle_s.sum() / out_tokens.sum()) if out_tokens.sum() else 0.0,
        "overhead_s_mean": float(c["overhead_s"].mean()) if len(c) else 0.0,
    }
    busy = phases["draft"] + phases["verify"] + phases["overhead"]
    out["cycle_time_share"] = {
        k: (phases[k] / busy if busy > 0 else 0.0) for k in ("draft", "verify", "overhead")
    }
    out["target_only_token_s"] = t1
    out["target_only_service_s"] = plain_service
    out["service_s"] = spec_service
    out["speedup_vs_target_only"] = plain_service / spec_service if spec_service > 0 else 0.0

    passes = r["verify_passes"].to_numpy(float)
    out["verify_passes"] = {**percentiles(passes), "max": float(passes.max()) if passes.size else 0.0}
    out["context_buckets"] = context_buckets(c)
    out["metrics"] = [m.name for m in METRICS]
    if not split_known(c):
        _without_split(out)
    return out


def _without_split(out: dict[str, Any]) -> None:
    """An imported trace with each step's wall time but no draft/verify split: the figures that
    need the split are None and ``unavailable`` says why -- never estimated from nothing."""
    why = "needs the draft/verify split; the trace has each step's wall time (cycle_s) only"
    for key in ("wasted_draft_s", "cycle_time_share", "verify_fit", "target_only_token_s",
                "target_only_service_s", "speedup_vs_target_only"):
        out[key] = None
        out["unavailable"][key] = why
    for key in ("draft", "verify", "overhead"):
        out["time_s"][key] = out["time_share"][key] = None
    out["time_share"]["other"] = None
    for key in ("draft_step_s", "target_only_token_s", "draft_to_target_cost", "overhead_s_mean"):
        out["costs"][key] = None
    out["unavailable"]["costs"] = "draft and target-only costs " + why


def first_requests(trace: Trace, n: int) -> Trace:
    """The trace cut to its first ``n`` requests by arrival (ties by request id) and their
    cycles (the trace itself if it has no more)."""
    if len(trace.requests) <= n:
        return trace
    r = trace.requests
    rows = np.lexsort((r["request_id"].to_numpy(), r["arrival_s"].to_numpy(dtype=float)))
    requests = r.iloc[np.sort(rows[: max(1, n)])].reset_index(drop=True)
    cycles = trace.cycles[trace.cycles["request_id"].isin(requests["request_id"])]
    return Trace(trace.meta, requests, cycles.reset_index(drop=True), path=trace.path)


__all__ = [
    "CONTEXT_BUCKETS",
    "METRICS",
    "Metric",
    "compute_metrics",
    "context_buckets",
    "first_requests",
    "fit_verify",
    "metric",
    "tau_curve",
]
