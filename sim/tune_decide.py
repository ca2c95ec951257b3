"""The decision at one batch size of ``specsim tune``: which draft length to recommend.

A seam over the what-if decision rule: every candidate is classed against the SLO by its p95
interval (``"yes"``: the whole interval below it; ``"within_noise"``: the SLO inside it; ``"no"``),
the best by the objective is taken among those that surely meet it (``"within_noise"`` ones only
when none does), and it is recommended over the incumbent -- target-only -- only when the 95%
interval of its paired gain lies above 0. Otherwise the answer is 0: speculation does not
surely pay there. When target-only itself misses the SLO and a draft length meets it, that draft
length is the answer whatever its gain.
"""

from __future__ import annotations

from typing import Any

from sim.tune import OBJECTIVES, Candidate, paired_gain

SLO_CLASSES = ("yes", "within_noise", "no")


def p95_interval(c: Candidate) -> list[float] | None:
    """The candidate's p95 (seconds) 95% interval from its draws."""
    from sim.intervals import interval

    values = [d["p95_s"] for d in c.draws if d is not None and d.get("p95_s") is not None]
    return interval(c.estimate.get("p95_s"), values)


def slo_class(c: Candidate, slo_p95_ms: float | None) -> str:
    """``"yes"`` | ``"within_noise"`` | ``"no"``: does the candidate's p95 meet the SLO?"""
    if slo_p95_ms is None:
        return "yes"
    ci = p95_interval(c)
    if ci is None:
        return "yes" if float(c.estimate["p95_s"]) * 1e3 <= slo_p95_ms else "no"
    if ci[1] * 1e3 <= slo_p95_ms:
        return "yes"
    return "within_noise" if ci[0] * 1e3 <= slo_p95_ms else "no"


def score(c: Candidate, objective: str) -> float:
    """Higher is better: throughput, or minus a latency."""
    value = float(c.estimate.get(OBJECTIVES[objective]) or 0.0)
    return value if objective == "throughput" else -value


def decide(cands: list[Candidate], objective: str,
           slo_p95_ms: float | None = None) -> dict[str, Any]:
    """The answer among the fixed draft lengths of ``cands`` (tau 0 among them): ``tau``,
    ``best_tau`` (the best by the estimate, recommended or not), ``meets_slo`` and ``reason``."""
    fixed = [c for c in cands if c.tau is not None]
    zero = next(c for c in fixed if c.tau == 0)
    classes = {id(c): slo_class(c, slo_p95_ms) for c in fixed}
    eligible = [c for c in fixed if classes[id(c)] == "yes"]
    if not eligible:
        eligible = [c for c in fixed if classes[id(c)] == "within_noise"]
    if not eligible:
        best = max(fixed, key=lambda c: -float(c.estimate["p95_s"]))
        return {"tau": best.tau, "best_tau": best.tau, "meets_slo": "no",
                "reason": f"no draft length meets the p95 SLO of {slo_p95_ms:g} ms; tau="
                          f"{best.tau} comes closest (lowest p95)"}
    best = max(eligible, key=lambda c: score(c, objective))
    meets = classes[id(best)]
    if best is zero:
        return {"tau": 0, "best_tau": 0, "meets_slo": meets,
                "reason": "target-only is the best by the objective"}
    if zero not in eligible:
        return {"tau": best.tau, "best_tau": best.tau, "meets_slo": meets,
                "reason": f"target-only does not meet the SLO ({classes[id(zero)]}); tau="
                          f"{best.tau} does"}
    est, ci = paired_gain(objective, best, zero)
    if ci is not None and ci[0] > 0:
        return {"tau": best.tau, "best_tau": best.tau, "meets_slo": meets,
                "reason": "its gain over target-only is above 0 within the 95% interval"}
    shown = "no interval" if ci is None else f"[{ci[0]:+.1%}, {ci[1]:+.1%}]"
    return {"tau": 0, "best_tau": best.tau, "meets_slo": classes[id(zero)],
            "reason": f"tau={best.tau} is best by the estimate ({est:+.1%}) but its gain "
                      f"interval {shown} reaches 0: speculation does not surely pay"}


__all__ = ["SLO_CLASSES", "decide", "p95_interval", "slo_class"]
