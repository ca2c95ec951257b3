"""Detectors of whether a trace can be trusted: acceptance higher than the logged
probabilities allow (``suspicious_acceptance``) and unstable timing (``unstable_timing``,
:mod:`analysis.timing`). Each is ``(trace, metrics) -> Finding | None``; thresholds are listed
in :mod:`analysis.diagnose`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import timing
from analysis.finding import Finding
from tracing import Trace


def _list_column(cycles: pd.DataFrame, name: str) -> Any:
    """An Arrow list array of a per-position column (None when absent or all null)."""
    if name not in cycles.columns:
        return None
    arr = pa.array(cycles[name], type=pa.list_(pa.float64()))
    return arr if arr.null_count < len(arr) else None


def suspicious(trace: Trace, m: dict[str, Any]) -> Finding | None:
    c = trace.cycles
    q_arr, p_arr = _list_column(c, "draft_prob"), _list_column(c, "target_prob")
    if q_arr is None or p_arr is None:
        return None
    lengths = np.asarray(p_arr.value_lengths().fill_null(0))
    if not np.array_equal(lengths, np.asarray(q_arr.value_lengths().fill_null(0))):
        return None
    q = np.asarray(q_arr.flatten(), dtype=float)
    p = np.asarray(p_arr.flatten(), dtype=float)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(lengths.sum()) - starts  # 0-based drafted position
    accepted = np.repeat(c["accepted"].to_numpy(), lengths)
    tau = np.repeat(c["tau"].to_numpy(), lengths)
    reached = (pos <= accepted) & (pos < tau)
    took = pos < accepted
    if reached.sum() < 100:
        return None
    if trace.meta.temperature > 0:
        a = np.minimum(1.0, p[reached] / np.maximum(q[reached], 1e-12))
        expected, observed = float(a.sum()), float(took.sum())
        z = (observed - expected) / math.sqrt(max(float((a * (1 - a)).sum()), 1e-9))
        if z < 4 or observed < 1.1 * expected:
            return None
        severity = 0.5 + observed / max(expected, 1e-9) - 1.0
        evidence = {"accepted_tokens": observed, "expected_accepted": expected, "z": z,
                    "observed_rate": observed / reached.sum(),
                    "allowed_rate": expected / reached.sum()}
        detail = "more than min(1, p/q) allows"
    else:
        low = float((p[took] < 0.01).mean()) if took.any() else 0.0
        if low < 0.05:
            return None
        severity = 0.5 + 5 * low
        evidence = {"accepted_with_p_below_0.01": low, "accepted_tokens": float(took.sum())}
        detail = "greedy-accepted tokens the target barely predicted"
    honest: list[dict[str, Any]] = []
    if "allowed_rate" in evidence:  # what the run would do with the acceptance p/q allow
        honest = [{"acceptance.model": "iid", "acceptance.alpha": round(evidence["allowed_rate"], 4),
                   "acceptance.per_request": False, "acceptance.replay": False}]
    return Finding(
        "suspicious_acceptance",
        severity,
        f"Acceptance is higher than the logged probabilities allow ({detail})",
        evidence,
        "check the verifier: accept with probability min(1, p/q) on the target's (not the "
        "draft's) distribution and compare against the same position; the speedup is not "
        "trustworthy until then",
        overrides=honest,
    )


def unstable_timing(trace: Trace, m: dict[str, Any]) -> Finding | None:
    health = timing.assess(trace)
    problems = health["problems"]
    if not problems:
        return None
    evidence = {k: v for k, v in health.items() if k != "problems"}
    evidence["problems"] = [p["kind"] for p in problems]
    advice = []
    kinds = {p["kind"] for p in problems}
    if "warmup" in kinds:
        k = health["warmup_requests"]
        advice.append("warm up longer before measuring (specsim capture --warmup-tokens 128), or "
                      f"drop the first {k} requests and re-capture")
    if kinds & {"drift", "verify_spread", "stalls"}:
        advice.append("re-capture on a quiet machine with fixed clocks (nothing else on the device), "
                      "and more requests")
    return Finding(
        "unstable_timing",
        timing.severity(health),
        "Timing is unstable: " + "; ".join(p["text"] for p in problems),
        evidence,
        "; ".join(advice) + ". Costs fitted from this trace, and every prediction made from it, "
        "carry this noise",
    )


__all__ = ["suspicious", "unstable_timing"]
