"""The decision at one batch size of ``specsim tune``, through the one decision rule.

Each fixed draft length at the batch size is an :class:`sim.sweep.decide.Option` (its estimate, its
paired draws, its p95 interval) and :func:`sim.sweep.decide.decide` chooses among them with
target-only (tau 0) as the incumbent: the best by the objective among those that meet the SLO
(``"within_noise"`` ones only when none surely does), recommended over target-only only when
the paired interval of the change says it helps -- else 0, speculation does not surely pay
there; a draft length that surely meets the SLO while target-only does not wins on that alone.
When no draft length meets the SLO, the one with the lowest p95 is shown, marked ``"no"``.
"""

from __future__ import annotations

from typing import Any

from sim.sweep.decide import Option, slo_verdict
from sim.sweep.decide import decide as decide_rule
from sim.sweep.tune import OBJECTIVES, Candidate


def p95_interval(c: Candidate) -> list[float] | None:
    """The candidate's p95 (seconds) 95% interval from its draws (log scale: never below 0)."""
    from sim.sweep.intervals import interval

    values = [d["p95_s"] for d in c.draws if d is not None and d.get("p95_s") is not None]
    return interval(c.estimate.get("p95_s"), values, positive=True)


def slo_class(c: Candidate, slo_p95_ms: float | None) -> str:
    """``"yes"`` | ``"within_noise"`` | ``"no"``: does the candidate's p95 meet the SLO?"""
    return slo_verdict(float(c.estimate["p95_s"]), p95_interval(c), slo_p95_ms)


def option(c: Candidate) -> Option:
    """The candidate as the decision rule's option."""
    return Option(label={"policy.tau": c.tau}, estimate=c.estimate, draws=c.draws,
                  p95_ci=p95_interval(c))


def decide(cands: list[Candidate], objective: str, slo_p95_ms: float | None = None,
           depth: int | None = None) -> dict[str, Any]:
    """The answer among the fixed draft lengths of ``cands`` (tau 0 among them): ``tau``,
    ``best_tau`` (the best by the estimate among those meeting the SLO, recommended or not),
    ``meets_slo`` and ``reason``.

    ``depth``: the deepest draft position the trace measured. A longer draft length rests on
    acceptance the trace never saw (the last measured position's, carried on), so it is a
    change from the best draft length within that depth: recommended only when its paired
    interval over that one says it helps, as any change over the incumbent."""
    fixed = [c for c in cands if c.tau is not None]
    everywhere = _decide(fixed, objective, slo_p95_ms)
    if depth is None or everywhere["tau"] <= depth:
        return everywhere
    inside = [c for c in fixed if c.tau is not None and c.tau <= depth]
    beyond = [c for c in fixed if c.tau is not None and c.tau > depth]
    measured = _decide(inside, objective, slo_p95_ms)
    if measured["meets_slo"] == "no":
        return everywhere
    incumbent = next(c for c in inside if c.tau == measured["tau"])
    got = decide_rule([option(c) for c in [incumbent, *beyond]], objective=objective,
                      slo_p95_ms=slo_p95_ms, incumbent=0)
    if got.best not in (None, 0):
        return {**everywhere, "reason": f"{everywhere['reason']}; beyond the {depth} draft "
                f"positions the trace measured, and surely better than tau={incumbent.tau}, "
                "the best within them"}
    return {**measured, "best_tau": everywhere["best_tau"],
            "reason": f"tau={everywhere['best_tau']} is best by the estimate but lies beyond the "
                      f"{depth} draft positions the trace measured (its acceptance there is "
                      f"assumed) and its paired 95% interval over tau={incumbent.tau} reaches no "
                      f"change; {measured['reason']}"}


def _decide(fixed: list[Candidate], objective: str,
            slo_p95_ms: float | None) -> dict[str, Any]:
    """:func:`decide` among ``fixed`` (tau 0 among them), with target-only the incumbent."""
    zero = next(i for i, c in enumerate(fixed) if c.tau == 0)
    got = decide_rule([option(c) for c in fixed], objective=objective,
                      slo_p95_ms=slo_p95_ms, incumbent=zero)
    if got.best is None:
        low = min(range(len(fixed)), key=lambda i: float(fixed[i].estimate["p95_s"]))
        return {"tau": fixed[low].tau, "best_tau": fixed[low].tau, "meets_slo": "no",
                "reason": f"no draft length meets the p95 SLO of {slo_p95_ms:g} ms; tau="
                          f"{fixed[low].tau} comes closest (lowest p95)"}
    sign = 1.0 if objective == "throughput" else -1.0
    pool = [i for i, v in enumerate(got.verdicts) if v == got.tier]
    leader = max(pool, key=lambda i: sign * float(fixed[i].estimate[OBJECTIVES[objective]]))
    tau = fixed[got.best].tau
    reason = got.reason
    if got.kept_incumbent and fixed[leader].tau != 0:
        reason = (f"tau={fixed[leader].tau} is best by the estimate but its paired 95% interval "
                  "over target-only reaches no change: speculation does not surely pay")
    elif tau == 0:
        reason = "target-only is the best by the objective"
    else:
        reason = reason.replace("the current configuration", "target-only")
    return {"tau": tau, "best_tau": fixed[leader].tau if got.kept_incumbent else tau,
            "meets_slo": got.verdicts[got.best], "reason": reason}


__all__ = ["decide", "option", "p95_interval", "slo_class"]
