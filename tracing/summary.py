"""The trace summary: counts, tokens per cycle, latency percentiles and vLLM's spec-decode words.

Definitions (vLLM's names where they exist; "spec cycles" are cycles with tau > 0):

- ``draft_acceptance_rate`` = sum(accepted) / sum(tau)
- ``mean_acceptance_length`` = 1 + sum(accepted) / spec cycles  (tokens per verify pass of a spec cycle)
- ``system_efficiency`` = sum(emitted) / sum(tau + 1) over spec cycles
- ``acceptance_by_position[i]`` = #(accepted >= i+1) / #(tau >= i+1): the chance the (i+1)-th drafted
  token is accepted among cycles that drafted it (vLLM's per-position acceptance rate)
- ``acceptance_by_position_per_draft[i]`` = #(accepted >= i+1) / spec cycles: the same counts over
  every draft (how vLLM's and llama.cpp's counters divide: ``..._per_pos / num_drafts``); equal to
  ``acceptance_by_position`` when every draft has the full length
- ``acceptance_hazard_by_position[i]`` = #(accepted >= i+1) / #(accepted >= i and tau >= i+1): the
  chance position i+1 is accepted given that it was drafted and everything before it was
- ``tokens_per_cycle`` = mean emitted per spec cycle (all cycles when none speculates)
- ``latency_s`` = end_s - arrival_s; ``ttft_s`` = first_token_s - arrival_s;
  ``tpot_s`` = (end_s - first_token_s) / (output_tokens - 1), over the requests that were not
  ``interrupted`` (those are counted in ``interrupted_requests``; ``include_interrupted=True``
  takes them in)
- ``time_s`` = seconds in prefill, draft, verify and overhead; without the draft/verify split
  (an imported trace with ``cycle_s`` only) draft/verify/overhead are None and ``cycle`` holds the
  steps' total
- ``unavailable`` = {figure: why} for each figure the trace cannot give; those figures are None
  (or an empty list), never invented
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tracing.schema import STOP_INTERRUPTED
from tracing.trace import Trace


def percentiles(values: np.ndarray | pd.Series) -> dict[str, float]:
    """mean, p50, p95, p99 of a sample (NaN-free); zeros for an empty sample."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"mean": float(v.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def acceptance_by_position(tau: np.ndarray, accepted: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-position acceptance (vLLM's) and the censoring-aware hazard, positions 1..max(tau)."""
    max_tau = int(tau.max()) if tau.size else 0
    # counts[k] = number of cycles with value == k; suffix sums give #(value >= k).
    tau_ge = np.cumsum(np.bincount(tau, minlength=max_tau + 1)[::-1])[::-1]
    acc_ge = np.cumsum(np.bincount(accepted, minlength=max_tau + 1)[::-1])[::-1]
    # #(accepted >= i-1 and tau >= i), by position i: cycles that reached position i.
    reached = np.bincount(np.minimum(accepted + 1, tau), minlength=max_tau + 1)
    reached_ge = np.cumsum(reached[::-1])[::-1]
    by_pos, hazard = [], []
    for i in range(1, max_tau + 1):
        by_pos.append(float(acc_ge[i] / tau_ge[i]) if tau_ge[i] else 0.0)
        hazard.append(float(acc_ge[i] / reached_ge[i]) if reached_ge[i] else 0.0)
    return by_pos, hazard


def interrupted_mask(requests: pd.DataFrame) -> np.ndarray:
    """True for the requests whose ``stop_reason`` is ``interrupted``."""
    if "stop_reason" not in requests.columns:
        return np.zeros(len(requests), dtype=bool)
    return (requests["stop_reason"] == STOP_INTERRUPTED).to_numpy(dtype=bool)


def split_known(cycles: pd.DataFrame) -> bool:
    """Whether every cycle has its draft/verify/overhead split (not only ``cycle_s``)."""
    return not cycles["draft_s"].hasnans if len(cycles) else True


def summarize(trace: Trace, *, include_interrupted: bool = False) -> dict[str, Any]:
    """The ``specsim trace summary --json`` object."""
    c, r_all = trace.cycles, trace.requests
    interrupted = interrupted_mask(r_all)
    r = r_all if include_interrupted else r_all[~interrupted]
    tau = c["tau"].to_numpy()
    accepted = c["accepted"].to_numpy()
    emitted = c["emitted"].to_numpy()
    spec = tau > 0
    n_spec = int(spec.sum())
    drafted = int(tau.sum())
    acc_total = int(accepted.sum())
    by_pos, hazard = acceptance_by_position(tau[spec], accepted[spec])
    unavailable: dict[str, str] = {}

    latency = (r["end_s"] - r["arrival_s"]).to_numpy()
    ttft = (r["first_token_s"] - r["arrival_s"]).to_numpy()
    out = r["output_tokens"].to_numpy()
    multi = out > 1
    tpot = ((r["end_s"] - r["first_token_s"]).to_numpy()[multi] / (out[multi] - 1))
    span = float(r["end_s"].max() - r["arrival_s"].min()) if len(r) else 0.0
    has_split = split_known(c)
    phase: dict[str, float | None] = {
        "prefill": float(r_all["prefill_s"].sum()),
        "draft": float(c["draft_s"].sum()) if has_split else None,
        "verify": float(c["verify_s"].sum()) if has_split else None,
        "overhead": float(c["overhead_s"].sum()) if has_split else None,
        "cycle": float(c["cycle_s"].sum()),
    }
    if not has_split:
        unavailable["time_s.draft/verify/overhead"] = (
            "the trace has each step's wall time (cycle_s) but not its draft/verify split")
    busy = phase["prefill"] + phase["cycle"]  # type: ignore[operator]
    shares = {k: (v / busy if busy and v is not None else (None if v is None else 0.0))
              for k, v in phase.items() if k != "cycle"}
    if not len(r):
        unavailable["latency_s"] = (
            "no requests to measure (a trace without request lines, e.g. cut by a crash: "
            "trace validate says how many cycles lack one)" if not len(r_all) else
            "every request was interrupted (--include-interrupted takes them in)")
    if not len(c):
        unavailable["acceptance"] = "the trace has no cycles (an acceptance profile or requests only)"
    meta = trace.meta
    result: dict[str, Any] = {
        "source": meta.source,
        "target_model": meta.target_model,
        "draft_model": meta.draft_model,
        "policy": meta.policy,
        "requests": len(r_all),
        "interrupted_requests": int(interrupted.sum()),
        "cycles": len(c),
        "spec_cycles": n_spec,
        "target_only_cycles": len(c) - n_spec,
        "output_tokens": int(r_all["output_tokens"].sum()),
        "drafted_tokens": drafted,
        "accepted_tokens": acc_total,
        "mean_tau": float(tau[spec].mean()) if n_spec else 0.0,
        "mean_accepted": float(accepted[spec].mean()) if n_spec else 0.0,
        "tokens_per_cycle": float(emitted[spec].mean() if n_spec else (emitted.mean() if len(c) else 0.0)),
        "draft_acceptance_rate": acc_total / drafted if drafted else 0.0,
        "mean_acceptance_length": 1.0 + acc_total / n_spec if n_spec else 1.0,
        "system_efficiency": float(emitted[spec].sum() / (tau[spec] + 1).sum()) if n_spec else 0.0,
        "acceptance_by_position": by_pos,
        "acceptance_by_position_per_draft": [
            float((accepted[spec] >= i + 1).sum() / n_spec) for i in range(len(by_pos))],
        "acceptance_hazard_by_position": hazard,
        "verify_passes_per_request": float(r_all["verify_passes"].mean()) if len(r_all) else 0.0,
        "latency_s": percentiles(latency),
        "ttft_s": percentiles(ttft),
        "tpot_s": percentiles(tpot),
        "throughput_tok_s": float(out.sum() / span) if span > 0 else 0.0,
        "time_s": phase,
        "time_share": shares,
    }
    if "batch_size" in c.columns and len(c):
        result["mean_batch_size"] = float(c["batch_size"].mean())
    result["unavailable"] = unavailable
    return result
