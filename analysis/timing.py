"""Timing health of a trace: is its timing steady enough to fit costs and predict from?

A live capture's first requests often run slower (kernels compiled, caches and clocks warming
up), GPU clocks drift, and a step now and then stalls (a garbage collection, another process).
A cost model fitted to such a run, and every prediction made from it, carries that noise.

Every cycle's verify pass (its whole step, ``cycle_s``, where an imported trace does not split it)
is normalised by the median of its draft length (so acceptance and tau choices cancel out):
``norm = verify_s / median(verify_s | tau)``; 1 is a typical step. From it:

- ``warmup_ratio``: mean ``norm`` of the first :func:`warmup_count` requests (by arrival) over the
  mean of the rest (per-request means, so a long request counts once);
- ``first_request_ratio``: the first request's mean ``norm`` over the rest's;
- ``drift``: the change of per-request mean ``norm`` across the run after the warm-up requests
  (least-squares slope times the number of requests), with its correlation ``drift_r``;
- ``verify_cv``: the spread of the verify cost at each draft length (standard deviation over mean,
  cycle-weighted across lengths with at least :data:`MIN_LEVEL_CYCLES` cycles);
- ``outlier_steps``: cycles with ``norm >= OUTLIER_FACTOR``, and the share of verify time they take;
- ``request_speed_cv``: the spread of per-request mean ``norm`` (after the warm-up requests): the
  least relative error any per-request prediction from this trace can have.

:func:`assess` returns those figures and the problems that pass the thresholds below (empty for a
steady run: a CPU run with a few percent of jitter, a clean simulated trace).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracing.trace import Trace

MIN_REQUESTS = 4  # fewer: nothing to compare the first requests with
MIN_LEVEL_CYCLES = 5
OUTLIER_FACTOR = 3.0
WARMUP_RATIO = 1.25  # the first requests' steps >= 25% slower than the rest
FIRST_REQUEST_RATIO = 1.5
DRIFT = 0.25  # >= 25% change across the run, |r| >= DRIFT_R
DRIFT_R = 0.6
VERIFY_CV = 0.3
OUTLIER_TIME_SHARE = 0.05


def warmup_count(n_requests: int) -> int:
    """How many first requests are compared with the rest: a quarter, 1 to 8."""
    return int(min(8, max(1, n_requests // 4)))


def step_seconds(cycles: Any) -> np.ndarray | None:
    """Each cycle's verify pass, or its whole step (``cycle_s``) where an imported trace does not
    split it; None when neither is known."""
    for col in ("verify_s", "cycle_s"):
        if col in cycles.columns and len(cycles) and not cycles[col].isna().all():
            return np.asarray(cycles[col].to_numpy(float))
    return None


def _per_request_norm(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """(per-cycle norm, per-request mean norm in arrival order; NaN for a request w/o cycles)."""
    c, r = trace.cycles, trace.requests
    verify = step_seconds(c)
    if verify is None:
        raise ValueError("no step timings (verify_s or cycle_s) to assess")
    tau = c["tau"].to_numpy()
    norm = np.full(verify.size, np.nan)
    for t in np.unique(tau):
        at = (tau == t) & np.isfinite(verify)
        if not at.any():
            continue
        med = float(np.median(verify[at]))
        if med > 0:
            norm[at] = verify[at] / med
    order = r.sort_values(["arrival_s"], kind="stable")["request_id"].tolist()
    index = {rid: i for i, rid in enumerate(order)}
    which = np.array([index.get(rid, -1) for rid in c["request_id"].tolist()], dtype=np.int64)
    ok = (which >= 0) & np.isfinite(norm)
    sums = np.bincount(which[ok], weights=norm[ok], minlength=len(order))
    counts = np.bincount(which[ok], minlength=len(order))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_request = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return norm, per_request


def assess(trace: Trace) -> dict[str, Any]:
    """The timing figures of the module docstring and ``problems``: the ones past threshold,
    each ``{"kind": "warmup" | "drift" | "verify_spread" | "stalls", "text": ...}``."""
    c = trace.cycles
    out: dict[str, Any] = {"problems": []}
    verify = step_seconds(c)
    if verify is None:
        return out
    norm, per_request = _per_request_norm(trace)
    n = int(np.isfinite(per_request).sum())
    tau = c["tau"].to_numpy()
    cvs, weights = [], []
    for t in np.unique(tau):
        v = verify[(tau == t) & np.isfinite(verify)]
        if v.size >= MIN_LEVEL_CYCLES and v.mean() > 0:
            cvs.append(float(v.std(ddof=1) / v.mean()))
            weights.append(v.size)
    out["verify_cv"] = float(np.average(cvs, weights=weights)) if cvs else 0.0
    finite = np.isfinite(norm)
    outliers = finite & (norm >= OUTLIER_FACTOR)
    out["outlier_steps"] = int(outliers.sum())
    total = float(verify[finite].sum())
    out["outlier_time_share"] = float(verify[outliers].sum() / total) if total > 0 else 0.0
    problems: list[dict[str, str]] = out["problems"]
    if n >= MIN_REQUESTS:
        valid = per_request[np.isfinite(per_request)]
        k = warmup_count(n)
        rest = valid[k:]
        out["warmup_requests"] = k
        out["warmup_ratio"] = float(valid[:k].mean() / rest.mean()) if rest.mean() > 0 else 1.0
        out["first_request_ratio"] = float(valid[0] / valid[1:].mean()) if valid[1:].mean() > 0 else 1.0
        out["request_speed_cv"] = float(rest.std(ddof=1) / rest.mean()) if rest.size > 1 else 0.0
        drift, r = 0.0, 0.0
        if rest.size >= 4 and rest.std() > 0:
            x = np.arange(rest.size, dtype=float)
            slope = float(np.polyfit(x, rest, 1)[0])
            drift = slope * rest.size / float(rest.mean())
            r = float(np.corrcoef(x, rest)[0, 1])
        out["drift"], out["drift_r"] = drift, r
        if out["warmup_ratio"] >= WARMUP_RATIO or out["first_request_ratio"] >= FIRST_REQUEST_RATIO:
            problems.append({"kind": "warmup", "text": (
                f"warm-up: the first {k} requests' steps took {out['warmup_ratio']:.2f}x the rest's "
                f"(the first request {out['first_request_ratio']:.2f}x)")})
        if abs(drift) >= DRIFT and abs(r) >= DRIFT_R:
            problems.append({"kind": "drift", "text": (
                f"drift: steps got {abs(drift):.0%} {'slower' if drift > 0 else 'faster'} "
                f"across the run (r = {r:.2f})")})
    if out["verify_cv"] >= VERIFY_CV:
        problems.append({"kind": "verify_spread", "text": (
            f"spread: the verify cost at one draft length varies by {out['verify_cv']:.0%} "
            "(standard deviation over mean)")})
    if out["outlier_time_share"] >= OUTLIER_TIME_SHARE:
        problems.append({"kind": "stalls", "text": (
            f"stalls: {out['outlier_steps']} steps took >= {OUTLIER_FACTOR:g}x a typical one, "
            f"{out['outlier_time_share']:.0%} of verify time")})
    return out


def severity(health: dict[str, Any]) -> float:
    """How badly the timing is off: 0.3 at a threshold, up from there (clipped by the caller)."""
    s = 0.0
    if "warmup_ratio" in health:
        warm = max(health["warmup_ratio"], health["first_request_ratio"] ** 0.5)
        if warm >= WARMUP_RATIO or health["first_request_ratio"] >= FIRST_REQUEST_RATIO:
            s = max(s, 0.3 + 0.5 * (warm - 1.0))
        if abs(health.get("drift", 0.0)) >= DRIFT and abs(health.get("drift_r", 0.0)) >= DRIFT_R:
            s = max(s, 0.3 + 0.5 * abs(health["drift"]))
    if health.get("verify_cv", 0.0) >= VERIFY_CV:
        s = max(s, 0.3 + 0.5 * health["verify_cv"])
    if health.get("outlier_time_share", 0.0) >= OUTLIER_TIME_SHARE:
        s = max(s, 0.3 + 3.0 * health["outlier_time_share"])
    return s


def unstable_for(health: dict[str, Any], error: float) -> bool:
    """True when the timing noise alone exceeds a claimed relative ``error`` (e.g. 0.05):
    some problem was found, or the requests' speeds spread wider than ``error``."""
    return bool(health.get("problems")) or health.get("request_speed_cv", 0.0) > error


__all__ = ["assess", "severity", "unstable_for", "warmup_count"]
