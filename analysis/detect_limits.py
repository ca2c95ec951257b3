"""Detectors of the run's limits rather than its cycle: a verification budget that truncates
outputs (``budget_bound``, with what the budget can reach: :func:`sim.policies.budget.reach`)
and queueing that dominates the tail (``queueing_bound``). Each is
``(trace, metrics) -> Finding | None``; thresholds are listed in :mod:`analysis.diagnose`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.finding import Finding
from tracing import Trace


def _verify_caps(trace: Trace) -> tuple[int, float]:
    params = dict(trace.meta.policy_params or {})
    budget = ((trace.meta.extra or {}).get("scenario") or {}).get("budget") or {}
    cap = int(params.get("max_verify") or params.get("budget") or budget.get("max_verify_per_request") or 0)
    mean = float(params.get("mean_verify") or budget.get("mean_verify_per_request") or 0.0)
    return cap, mean


def budget_bound(trace: Trace, m: dict[str, Any]) -> Finding | None:
    cap, mean_cap = _verify_caps(trace)
    passes = trace.requests["verify_passes"].to_numpy()
    if passes.size == 0 or (cap <= 0 and mean_cap <= 0):
        return None
    at_cap = passes >= cap if cap > 0 else np.zeros(passes.size, dtype=bool)
    share = float(at_cap.mean())
    pool_spent = mean_cap > 0 and passes.mean() >= 0.97 * mean_cap
    if share < 0.1 and not pool_spent:
        return None
    out = trace.requests["output_tokens"].to_numpy(float)
    severity = 0.3 + 0.7 * share if share >= 0.1 else 0.4
    overrides: list[dict[str, Any]] = []
    if cap > 0:
        overrides += [{"budget.max_verify_per_request": n * cap} for n in (2, 3)]
    if mean_cap > 0:
        overrides += [{"budget.mean_verify_per_request": 2 * mean_cap}]
    overrides += [{"policy.name": "fixed", "policy.tau": max(2, round(m["mean_tau"])) + 2}]
    # Recorded lengths are already truncated; replay what the requests asked for when known.
    wanted = int((trace.meta.extra or {}).get("max_new_tokens") or 0)
    base: dict[str, Any] = {}
    if wanted > 0:  # pooled acceptance: per-request replay needs the recorded lengths
        base = {"workload.output_tokens": wanted, "acceptance.per_request": False,
                "acceptance.replay": False}
    reach = _budget_reach(trace, cap, mean_cap, wanted)
    infeasible = ""
    if reach is not None and not reach["feasible"]:
        from sim.policies.budget import describe

        infeasible = describe(reach) + ". "
    finding = Finding(
        "budget_bound",
        severity,
        f"The verification budget binds: {share:.0%} of requests used all {cap} passes"
        if cap > 0 else f"The verification pool is spent ({passes.mean():.1f} of {mean_cap:g} per request)",
        {
            "max_verify": cap,
            "mean_verify": mean_cap,
            "share_at_cap": share,
            "verify_passes_mean": float(passes.mean()),
            "output_tokens_at_cap": float(out[at_cap].mean()) if at_cap.any() else 0.0,
            "output_tokens_below_cap": float(out[~at_cap].mean()) if (~at_cap).any() else 0.0,
            "tokens_per_verify_pass": m["tokens_per_verify_pass"],
            "budget_reach": reach,
        },
        infeasible + "outputs are being truncated by the budget: raise it or draft longer so each "
        "pass yields more tokens"
        + (f" (simulated at max_new_tokens={wanted})" if wanted else
           " (simulated on the recorded, already truncated lengths)"),
        overrides=overrides,
    )
    finding.base_overrides = base
    return finding


def _budget_reach(trace: Trace, cap: int, mean_cap: float, wanted: int) -> dict[str, Any] | None:
    """What the trace's budget reaches at its own tokens per verify pass vs what its requests
    asked (``max_new_tokens``, else the scenario's output length of a simulated trace, else the
    recorded -- already truncated -- lengths): :func:`sim.policies.budget.reach`."""
    from sim.policies.budget import reach

    r = trace.requests
    passes = float(r["verify_passes"].sum())
    if passes <= 0:
        return None
    bound = [float(x) for x in (cap, mean_cap) if x > 0]
    asked = float(wanted)
    if asked <= 0:
        workload = ((trace.meta.extra or {}).get("scenario") or {}).get("workload") or {}
        length = workload.get("output_tokens")
        asked = float(length) if isinstance(length, int | float) and not isinstance(
            length, bool) else float(r["output_tokens"].mean())
    return reach(min(bound), float(r["output_tokens"].sum()) / passes, asked)


def queueing_bound(trace: Trace, m: dict[str, Any]) -> Finding | None:
    if m["requests"] < 20 or m["latency_s"]["p95"] <= 0:
        return None
    ratio = m["queue_s"]["p95"] / m["latency_s"]["p95"]
    if ratio < 0.5:
        return None
    return Finding(
        "queueing_bound",
        (ratio - 0.3) / 0.6,
        f"Queueing dominates the tail: p95 wait is {ratio:.0%} of p95 latency",
        {
            "queue_p95_s": m["queue_s"]["p95"],
            "latency_p95_s": m["latency_s"]["p95"],
            "queue_share_of_p95": ratio,
            "queue_time_share": m["time_share"]["queue"],
            "throughput_tok_s": m["throughput_tok_s"],
        },
        "add serving capacity: batch requests (continuous batching) or add replicas; "
        "per-request speedups do little while requests wait",
        overrides=[{"server.max_batch": b} for b in (2, 4, 8)],
    )


__all__ = ["budget_bound", "queueing_bound"]
