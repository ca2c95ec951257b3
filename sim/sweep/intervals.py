"""95% intervals on predicted figures: replications (the simulator's randomness) plus a bootstrap
over the trace's requests (the sample the model was fitted on).

Draw ``b`` of ``n`` (:func:`make_draws`) resamples the trace's requests with replacement
(:func:`bootstrap_trace`), refits the base scenario on that resample (:func:`refit`: every value
the base took from ``scenario_from_trace(trace)`` is replaced by the resample's fit; what the caller
changed stays) and simulates with seed ``seed + 1 + b``. Every configuration is run over the same
draws, so a change against the baseline is measured pairwise (common random numbers).

An interval is the estimate (the full trace, seed ``seed``) times ``exp(+- t(0.975, k - 1) * sd)``
of the ``k`` draws' log values (the normal bootstrap interval on a log scale, Student-t for few
draws): a latency's interval is never below 0. A change against a baseline is a ratio, its
interval from the draws' paired log ratios (:func:`ratio_interval`), shown in words by
:func:`ratio_text` ("p95 3% lower, 95% interval 10% lower to 2% higher"). Without a trace the draws
are replications only (``basis`` says which). A trace of fewer than :data:`SMALL_TRACE` requests
is flagged ``small_sample``: its intervals are wide.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from sim.calibrate import scenario_from_trace
from sim.engine.core import simulate
from sim.engine.figures import latency_quantiles
from sim.scenario import Scenario
from tracing.errors import SpecsimError
from tracing.trace import Trace

DRAWS = 20  # default draws per interval
SMALL_TRACE = 30  # requests: below, the sample says little and the intervals are wide
FIGURES = ("p50_s", "p95_s", "speedup_vs_target_only", "throughput_tok_s", "truncated_requests")
CHANGE_FIGURES = ("p50_s", "p95_s", "truncated_requests")


@dataclass(frozen=True)
class Draw:
    """One draw: the seed, the (refitted) scenario and the (resampled) trace it simulates."""

    seed: int
    scenario: Scenario
    trace: Trace | None


def brief(figures: dict[str, Any], slo_p95_ms: float | None = None) -> dict[str, float | None]:
    """The figures intervals are put on, from ``simulate``'s figures; with an SLO also
    ``goodput_tok_s``: the throughput times the share of requests finishing within it."""
    from sim.engine.figures import share_within

    speedup = figures.get("speedup_vs_target_only")
    out: dict[str, float | None] = {
        "p50_s": float(figures["latency_s"]["p50"]),
        "p95_s": float(figures["latency_s"]["p95"]),
        "speedup_vs_target_only": None if speedup is None else float(speedup),
        "throughput_tok_s": float(figures.get("throughput_tok_s") or 0.0),
        "truncated_requests": float(figures.get("truncated_requests") or 0),
    }
    if slo_p95_ms is not None:
        share = share_within(list(figures.get("latency_quantiles_s") or []), slo_p95_ms / 1e3)
        out["goodput_tok_s"] = float(out["throughput_tok_s"] or 0.0) * share
    return out


def _closed(trace: Trace) -> bool:
    r = trace.requests.sort_values("arrival_s")
    arrival, end = r["arrival_s"].to_numpy(float), r["end_s"].to_numpy(float)
    latency = np.maximum(end - arrival, 1e-9)
    return len(r) <= 1 or bool(np.all(np.abs(arrival[1:] - end[:-1]) <= 0.01 * latency[:-1] + 1e-3))


def bootstrap_trace(trace: Trace, rng: np.random.Generator) -> Trace:
    """The trace's requests drawn with replacement (as many as it has), renumbered 0..n-1.

    Request ``k`` of the resample takes arrival slot ``k`` of the original (arrivals in order;
    a closed run stays closed: each request arrives as the previous one ends) and the sampled
    request's durations, lengths, texts and cycles, shifted in time with it.
    """
    r = trace.requests.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    c = trace.cycles
    n = len(r)
    pick = rng.integers(0, n, n)
    new = r.iloc[pick].reset_index(drop=True).copy()
    own_arrival = new["arrival_s"].to_numpy(float)
    if _closed(trace):
        duration = (new["end_s"] - new["arrival_s"]).to_numpy(float)
        first = float(r["arrival_s"].iloc[0]) if n else 0.0
        slots = first + np.concatenate([[0.0], np.cumsum(duration)[:-1]])
    else:
        slots = r["arrival_s"].to_numpy(float)
    shift = slots - own_arrival
    for col in ("arrival_s", "start_s", "first_token_s", "end_s"):
        new[col] = new[col].to_numpy(float) + shift
    old_ids = new["request_id"].tolist()
    new["request_id"] = np.arange(n, dtype=np.int64)
    rows = c.groupby("request_id", sort=False).indices
    parts, ids, shifts = [], [], []
    for k, rid in enumerate(old_ids):
        got = rows.get(rid)
        if got is None:
            continue
        idx = np.asarray(got, dtype=np.int64)
        parts.append(idx)
        ids.append(np.full(idx.size, k, dtype=np.int64))
        shifts.append(np.full(idx.size, shift[k]))
    take = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    cycles = c.iloc[take].reset_index(drop=True).copy()
    if parts:
        cycles["request_id"] = np.concatenate(ids)
        cycles["start_s"] = cycles["start_s"].to_numpy(float) + np.concatenate(shifts)
    return Trace(trace.meta, new, cycles, path=trace.path)


def refit(base: Scenario, trace: Trace) -> Callable[[Trace], Scenario]:
    """A function from a resample to the base refitted on it: each value of ``base`` equal to
    ``scenario_from_trace(trace)``'s is taken from the resample's fit; the others stay."""
    fitted = scenario_from_trace(trace).to_dict()
    base_d = base.to_dict()

    def on(sample: Trace) -> Scenario:
        again = scenario_from_trace(sample).to_dict()
        out = copy.deepcopy(base_d)
        for section, table in base_d.items():
            fit, new = fitted.get(section, {}), again.get(section, {})
            if section == "policy":
                continue  # the policy is the caller's choice, never refitted
            for key, value in table.items():
                if key in fit and key in new and fit[key] == value:
                    out[section][key] = new[key]
        return Scenario.from_dict(out, where=base.where)

    return on


def make_draws(base: Scenario, trace: Trace | None, n: int = DRAWS, *, seed: int = 0) -> list[Draw]:
    """``n`` draws over ``base`` (see the module docstring); replications only without a trace."""
    if n < 0:
        raise SpecsimError(f"interval draws = {n}: must be >= 0")
    if trace is None or len(trace.requests) < 2:
        return [Draw(seed + 1 + b, base, trace) for b in range(n)]
    try:
        on = refit(base, trace)
    except SpecsimError:
        on = None
    draws = []
    for b in range(n):
        sample = bootstrap_trace(trace, np.random.default_rng([seed, b, 17]))
        scenario = base
        if on is not None:
            try:
                scenario = on(sample)
            except SpecsimError:
                scenario = base  # the resample could not be fitted: its data, the base's fit
        draws.append(Draw(seed + 1 + b, scenario, sample))
    return draws


def run_draws(draws: list[Draw], overrides: dict[str, Any] | None = None, *,
              slo_p95_ms: float | None = None) -> list[dict[str, Any] | None]:
    """Each draw simulated with ``overrides`` (None where the simulator refused the draw);
    with an SLO its figures carry ``goodput_tok_s`` (:func:`brief`)."""
    out: list[dict[str, Any] | None] = []
    for d in draws:
        try:
            scenario = d.scenario.with_overrides(overrides) if overrides else d.scenario
            result = simulate(scenario, d.trace, seed=d.seed)
            figures = result.figures
            if slo_p95_ms is not None:
                figures = {**figures,
                           "latency_quantiles_s": latency_quantiles(result.trace.requests)}
            out.append(brief(figures, slo_p95_ms))
        except SpecsimError:
            out.append(None)
    return out


def interval(estimate: float | None, values: list[float], confidence: float = 0.95, *,
             positive: bool = False) -> list[float] | None:
    """``estimate +- t * sd(values)`` (None without an estimate or with fewer than 2 values).

    ``positive``: the figure cannot be below 0 (a latency, a rate), so the interval is made on
    a log scale -- ``estimate * exp(+- t * sd(log values))`` -- and is never below 0; a figure
    that can be 0 (a count) keeps the linear interval, clipped at 0."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if estimate is None or x.size < 2:
        return None
    t = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, x.size - 1))
    if positive and estimate > 0 and bool(np.all(x > 0)):
        half = t * float(np.log(x).std(ddof=1))
        return [float(estimate * math.exp(-half)), float(estimate * math.exp(half))]
    half = t * float(x.std(ddof=1))
    lo, hi = float(estimate - half), float(estimate + half)
    return [max(0.0, lo), max(0.0, hi)] if positive else [lo, hi]


def ratio_interval(
    a: float | None,
    b: float | None,
    a_draws: list[float | None],
    b_draws: list[float | None],
    confidence: float = 0.95,
) -> list[float] | None:
    """The 95% interval of the ratio ``a / b`` from paired draws, on a log scale:
    ``a/b * exp(+- t * sd(log(a_i / b_i)))`` -- never below 0, and "3% lower" and "3% higher"
    are equally far from 1. None without positive estimates or with fewer than 2 pairs."""
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    logs = [math.log(x / y) for x, y in zip(a_draws, b_draws, strict=True)
            if x is not None and y is not None and x > 0 and y > 0
            and math.isfinite(x) and math.isfinite(y)]
    if len(logs) < 2:
        return None
    t = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, len(logs) - 1))
    half = t * float(np.std(logs, ddof=1))
    ratio = a / b
    return [float(ratio * math.exp(-half)), float(ratio * math.exp(half))]


def ratio_text(label: str, ratio: float | None, ci: list[float] | None) -> str:
    """``p95 3% lower, 95% interval 10% lower to 2% higher``: a change as a ratio, in words."""

    def words(r: float) -> str:
        pct = (r - 1.0) * 100.0
        if abs(pct) < 0.5:
            return "no different"
        return f"{abs(pct):.0f}% {'higher' if pct > 0 else 'lower'}"

    if ratio is None:
        return f"{label} -"
    text = f"{label} {words(ratio)}"
    if ci is not None:
        text += f", 95% interval {words(ci[0])} to {words(ci[1])}"
    return text


POSITIVE = ("p50_s", "p95_s", "speedup_vs_target_only", "throughput_tok_s", "goodput_tok_s")


def intervals(
    estimate: dict[str, Any],
    draws: list[dict[str, Any] | None],
    base_estimate: dict[str, Any] | None = None,
    base_draws: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """``ci95`` {figure: [lo, hi]} (never below 0) and, given the baseline's, ``change``
    {figure: estimate change}, ``change_ci95`` {figure: [lo, hi]}, ``change_ratio`` {figure:
    point / baseline} and ``change_ratio_ci95`` {figure: [lo, hi]} from the paired draws.

    A latency's change interval is its ratio interval (:func:`ratio_interval`, log scale) times
    the baseline: it never says a latency fell by more than all of it. A count's change
    (``truncated_requests``) is the plain paired difference."""
    keys = [k for k in FIGURES if k in estimate] + (["goodput_tok_s"] if "goodput_tok_s" in
                                                     estimate else [])
    out: dict[str, Any] = {"ci95": {
        key: interval(estimate.get(key), [float(d[key]) for d in draws
                                          if d is not None and d.get(key) is not None],
                      positive=True)
        for key in keys}}
    if base_estimate is None or base_draws is None:
        return out
    change, change_ci, ratio, ratio_ci = {}, {}, {}, {}
    for key in CHANGE_FIGURES:
        a, b = estimate.get(key), base_estimate.get(key)
        est = None if a is None or b is None else float(a) - float(b)
        change[key] = est
        if key in POSITIVE:
            ratio[key] = None if a is None or not b else float(a) / float(b)
            rci = ratio_interval(a, b, [None if d is None else d.get(key) for d in draws],
                                 [None if e is None else e.get(key) for e in base_draws])
            ratio_ci[key] = rci
            change_ci[key] = None if rci is None or b is None else [
                float(b) * (rci[0] - 1.0), float(b) * (rci[1] - 1.0)]
            continue
        diffs = [float(d[key]) - float(e[key]) for d, e in zip(draws, base_draws, strict=True)
                 if d is not None and e is not None and d[key] is not None and e[key] is not None]
        change_ci[key] = interval(est, diffs)
    out["change"], out["change_ci95"] = change, change_ci
    out["change_ratio"], out["change_ratio_ci95"] = ratio, ratio_ci
    return out


def basis(trace: Trace | None, n: int) -> dict[str, Any]:
    """How the intervals were made, in words and numbers (``interval`` of a prediction)."""
    requests = 0 if trace is None else len(trace.requests)
    boot = requests >= 2
    text = (f"95% interval from {n} draws, each a new simulator seed"
            + (f" and a bootstrap resample of the trace's {requests} requests (refitted)" if boot
               else " (replications only: no trace to resample)"))
    small = boot and requests < SMALL_TRACE
    caveat = (f"only {requests} requests: the intervals are wide, capture more to narrow them "
              "(and a p95 of so few requests sits near their maximum, which no resample "
              "exceeds: its interval understates the tail's uncertainty)") if small else ""
    return {"method": "replications + bootstrap over requests" if boot else "replications",
            "draws": n, "requests": requests, "small_sample": small, "text": text,
            "caveat": caveat}


def caveats(*bases: dict[str, Any] | None) -> str:
    """The small-sample caveat of any of ``bases`` (:func:`basis`), once ("" if none): an
    output says it once, not beside every figure."""
    for b in bases:
        if b and b.get("caveat"):
            return str(b["caveat"])
    return ""


def below_zero(ci: list[float] | None) -> bool:
    """True when the whole interval lies below 0."""
    return ci is not None and ci[1] < 0


def above_zero(ci: list[float] | None) -> bool:
    """True when the whole interval lies above 0."""
    return ci is not None and ci[0] > 0


__all__ = ["DRAWS", "SMALL_TRACE", "Draw", "above_zero", "basis", "below_zero", "bootstrap_trace",
           "brief", "caveats", "interval", "intervals", "make_draws", "ratio_interval", "ratio_text", "refit",
           "run_draws"]
