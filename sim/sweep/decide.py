"""The one decision: which simulated configuration to recommend, per workload condition.

``whatif``'s ``best``, diagnose's recommendations and ``tune`` all choose through
:func:`decide`. The rules, in order:

1. **Keys.** A grid's keys are *decision* keys -- what the operator chooses: ``policy.*``,
   ``draft.*``, ``budget.*``, ``latency.*`` (hardware, profile), ``server.*``, ``acceptance.*`` --
   or *condition* keys -- what the world brings: ``workload.*`` (:func:`is_condition`). Points
   are grouped by their condition values (:func:`group_by_condition`) and a best is chosen in
   each group, so a best never names a condition key (a lighter load is not a decision).
2. **SLO.** A point meets the p95 SLO ``"yes"`` only when its whole p95 interval is below it,
   ``"within_noise"`` when the interval straddles it, ``"no"`` when the interval is above it
   (:func:`slo_verdict`; without an interval, the estimate alone: ``"yes"`` or ``"no"``).
   Candidates are the *eligible* points (within budget, not overloaded) that meet it ``"yes"``;
   only when none does are the ``"within_noise"`` ones considered (the decision says so).
3. **Objective.** ``p95`` (default), ``p50`` (lower is better), ``throughput`` or ``goodput``
   (output tokens per second of requests finishing within the SLO; higher is better).
4. **Incumbent.** With an incumbent (the configuration now running: the trace's own, or the
   base scenario), a change is recommended only when the paired interval of its objective
   against the incumbent's -- same draws, as a ratio on a log scale
   (:func:`sim.sweep.intervals.ratio_interval`) -- lies wholly on the better side. Otherwise the
   incumbent is kept (when it is itself a candidate). A candidate that surely meets the SLO
   while the incumbent does not wins on that alone.
5. **Ties.** Without an incumbent the best estimate wins; the points whose paired interval
   against it does not say they are worse are ``tied`` and the reason says there is no clear
   best. Without draws, an estimate better by any amount counts (no noise is known).

Inputs are :class:`Option` objects (the figures of :func:`sim.sweep.intervals.brief`, per-draw the
same, an eligibility flag, the p95 interval); :func:`options_from_points` makes them from
``whatif`` points. Nothing here simulates: the caller runs the points, on the same draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tracing.errors import SpecsimError

CONDITION_SECTIONS = ("workload",)  # keys of these sections are conditions, not decisions
# objective -> (the figure of sim.sweep.intervals.brief it reads, +1: higher is better / -1: lower)
OBJECTIVES: dict[str, tuple[str, int]] = {
    "p95": ("p95_s", -1),
    "p50": ("p50_s", -1),
    "throughput": ("throughput_tok_s", 1),
    "goodput": ("goodput_tok_s", 1),
}
VERDICTS = ("yes", "within_noise", "no")


def is_condition(key: str) -> bool:
    """True for a condition key (``workload.*``), False for a decision key."""
    return key.partition(".")[0] in CONDITION_SECTIONS


def split_keys(vary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``vary`` split into (decision keys, condition keys), each in the order given."""
    decision = {k: v for k, v in vary.items() if not is_condition(k)}
    condition = {k: v for k, v in vary.items() if is_condition(k)}
    return decision, condition


def group_by_condition(varies: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[int]]]:
    """The points' indices grouped by their condition values, groups in first-seen order:
    ``[({"workload.concurrency": 1}, [0, 2]), ...]`` (one group ``({}, all)`` without any)."""
    groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, Any], list[int]]] = {}
    for i, vary in enumerate(varies):
        _, cond = split_keys(vary)
        key = tuple((k, repr(v)) for k, v in cond.items())
        groups.setdefault(key, (cond, []))[1].append(i)
    return list(groups.values())


def check_objective(objective: str, slo_p95_ms: float | None) -> None:
    """A known objective; ``goodput`` needs an SLO (requests within it are the good ones)."""
    if objective not in OBJECTIVES:
        raise SpecsimError(f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}")
    if objective == "goodput" and slo_p95_ms is None:
        raise SpecsimError("--objective goodput: needs --slo-p95-ms (goodput counts the "
                           "requests that finish within it)")


@dataclass
class Option:
    """One configuration to decide between.

    ``estimate``: :func:`sim.sweep.intervals.brief` figures of the full run; ``draws``: the same
    figures per paired draw (None where the draw failed; the list is None without intervals);
    ``eligible``: within budget and not overloaded; ``p95_ci``: [lo, hi] seconds or None;
    ``label``: what it is (the decision keys' values, or diagnose's overrides)."""

    label: dict[str, Any]
    estimate: dict[str, Any]
    draws: list[dict[str, Any] | None] | None = None
    eligible: bool = True
    p95_ci: list[float] | None = None


@dataclass
class Decision:
    """What :func:`decide` chose: indices into its options (None: nothing can be chosen)."""

    best: int | None
    tied: list[int] = field(default_factory=list)
    reason: str = ""
    verdicts: list[str] = field(default_factory=list)  # slo_verdict of each option
    kept_incumbent: bool = False  # the incumbent kept: no change surely helps
    tier: str = "yes"  # the SLO verdict of the options chosen among


def slo_verdict(p95_s: float, p95_ci: list[float] | None, slo_p95_ms: float | None) -> str:
    """``"yes"`` (the p95 interval wholly below the SLO), ``"within_noise"`` (it straddles
    it) or ``"no"``; without an interval the estimate decides; without an SLO, ``"yes"``."""
    if slo_p95_ms is None:
        return "yes"
    slo = slo_p95_ms / 1e3
    if p95_ci is None:
        return "yes" if p95_s <= slo else "no"
    if p95_ci[1] <= slo:
        return "yes"
    return "within_noise" if p95_ci[0] <= slo else "no"


def objective_value(figures: dict[str, Any] | None, objective: str) -> float | None:
    """The objective's figure of ``figures`` (None when missing or not finite)."""
    if figures is None:
        return None
    value = figures.get(OBJECTIVES[objective][0])
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def change_interval(a: Option, b: Option, objective: str) -> list[float] | None:
    """The 95% interval of ``a``'s objective as a ratio of ``b``'s, from their paired draws
    (None without draws or where a figure is not positive)."""
    from sim.sweep.intervals import ratio_interval

    if a.draws is None or b.draws is None:
        return None
    key = OBJECTIVES[objective][0]
    return ratio_interval(objective_value(a.estimate, objective),
                          objective_value(b.estimate, objective),
                          [None if d is None else d.get(key) for d in a.draws],
                          [None if d is None else d.get(key) for d in b.draws])


def better(a: Option, b: Option, objective: str) -> bool:
    """True when ``a`` is surely better than ``b`` on the objective: the paired ratio interval
    lies wholly on the better side of 1 (without draws: a better estimate)."""
    sign = OBJECTIVES[objective][1]
    ci = change_interval(a, b, objective)
    if ci is not None:
        return ci[0] > 1.0 if sign > 0 else ci[1] < 1.0
    va, vb = objective_value(a.estimate, objective), objective_value(b.estimate, objective)
    if va is None or vb is None:
        return False
    if a.draws is not None and b.draws is not None:
        return False  # draws exist but say nothing (too few): no evidence
    return va > vb if sign > 0 else va < vb


def decide(
    options: list[Option],
    *,
    objective: str = "p95",
    slo_p95_ms: float | None = None,
    incumbent: int | None = None,
) -> Decision:
    """Choose among ``options`` (one condition's points) by the module's rules."""
    check_objective(objective, slo_p95_ms)
    sign = OBJECTIVES[objective][1]
    verdicts = [slo_verdict(float(o.estimate["p95_s"]), o.p95_ci, slo_p95_ms) for o in options]
    pool = [i for i, o in enumerate(options) if o.eligible and verdicts[i] == "yes"]
    tier = "yes"
    if not pool:
        pool = [i for i, o in enumerate(options) if o.eligible and verdicts[i] == "within_noise"]
        tier = "within_noise"
    pool = [i for i in pool if objective_value(options[i].estimate, objective) is not None]
    if not pool:
        what = "meets the SLO" if slo_p95_ms is not None else "can be chosen"
        return Decision(None, [], f"no point {what} within budget and without overload",
                        verdicts, tier="no")

    def rank(i: int) -> float:
        return sign * (objective_value(options[i].estimate, objective) or 0.0)

    leader = max(pool, key=rank)
    noise = ("; none meets the SLO surely: chosen among those whose p95 interval reaches it "
             "(within the noise)" if tier == "within_noise" else "")
    if incumbent is not None and incumbent in pool:
        inc = options[incumbent]
        winners = [i for i in pool if i != incumbent and better(options[i], inc, objective)]
        if winners:
            best = max(winners, key=rank)
            tied = [i for i in pool if i != best and not better(options[best], options[i],
                                                                objective)]
            reason = (f"surely better on {objective} than the current configuration (the "
                      f"paired 95% interval of the change excludes no change){noise}")
            return Decision(best, tied, reason, verdicts, tier=tier)
        tied = [i for i in pool if i != incumbent and not better(inc, options[i], objective)]
        reason = (f"the current configuration: no change tried is surely better on {objective} "
                  f"(every paired 95% interval of a change reaches no change){noise}")
        return Decision(incumbent, tied, reason, verdicts, kept_incumbent=True, tier=tier)
    tied = [i for i in pool if i != leader and not better(options[leader], options[i], objective)]
    if incumbent is not None:
        head = (f"the current configuration does not meet the SLO{' surely' if tier == 'yes' else ''}"
                " or the budget; of those that do, the best")
    else:
        head = "the best"
    if len(pool) == 1:
        meets = "meets the SLO surely" if slo_p95_ms is not None and tier == "yes" else "qualifies"
        reason = (f"the only point that {meets}, within budget and without overload{noise}"
                  if incumbent is None else
                  f"the current configuration does not meet the SLO{' surely' if tier == 'yes' else ''}"
                  f" or the budget; this is the only point that does{noise}")
    elif tied:
        reason = (f"no clear best: {head} {objective} estimate, but {len(tied)} other point(s) "
                  f"cannot be told from it within the paired 95% intervals{noise}")
    else:
        reason = f"{head} {objective}, clear of the others' paired 95% intervals{noise}"
    return Decision(leader, tied, reason, verdicts, tier=tier)


def options_from_points(points: list[dict[str, Any]],
                        draws: list[list[dict[str, Any] | None]] | None = None) -> list[Option]:
    """Options from ``whatif`` points (``vary``, ``latency_s``, ``ci95``, ``within_budget``,
    ``overloaded``) and each point's draws (None without intervals)."""
    from sim.sweep.intervals import brief

    out = []
    for i, p in enumerate(points):
        est = {**brief(p), **({"goodput_tok_s": p["goodput_tok_s"]} if "goodput_tok_s" in p
                              else {})}
        out.append(Option(
            label=split_keys(p["vary"])[0],
            estimate=est,
            draws=None if draws is None else draws[i],
            eligible=bool(p.get("within_budget", True) and not p.get("overloaded")
                          and p.get("fits", True)),
            p95_ci=(p.get("ci95") or {}).get("p95_s"),
        ))
    return out


__all__ = ["CONDITION_SECTIONS", "OBJECTIVES", "VERDICTS", "Decision", "Option", "better",
           "change_interval", "check_objective", "decide", "group_by_condition", "is_condition",
           "objective_value", "options_from_points", "slo_verdict", "split_keys"]
