"""Name the bottleneck of a speculative-decoding trace, and quantify the fix by simulation.

:func:`diagnose` runs one detector per kind over :func:`analysis.metrics.compute_metrics` and
returns :class:`Finding` objects ordered by severity. Severity is in [0, 1]; level "high" from
0.6, "medium" from 0.3, else "low". With ``whatif=True`` each finding's recommendation is
simulated: ``sim.scenario_from_trace(trace)`` replays the run, ``with_overrides`` applies each
candidate change, and the best candidate (lowest simulated p95) becomes ``predicted``.

Detectors and their thresholds (each fires only past its threshold, and fits need at least
:data:`MIN_FIT_CYCLES` cycles, measured shares :data:`MIN_CYCLES`, so a short or healthy
run -- alpha ~0.8, tau 4, draft at <10% of a target step, flat verify, closed load -- gets
nothing; tests/test_diagnose.py holds both sides):

- ``speculation_not_paying``: estimated service-time speedup over target-only < 0.97.
  severity = 0.6 + 2 * (1 - speedup).
- ``over_speculation``: wasted drafting >= 50% of drafted tokens, mean accepted prefix < 40% of
  tau, and a shorter fixed tau is >= 8% faster on the measured hazard and costs
  (:func:`analysis.metrics.tau_curve`). severity = 0.3 + 1.5 * gain.
- ``draft_bound``: drafting >= 35% of cycle time and a draft step >= 15% of a target step.
  severity = 1.5 * (share - 0.3) + (cost ratio - 0.15).
- ``verify_not_parallel``: the fit verify_s ~ a + b * (tau + 1) has b / (a + b) >= 0.1, R^2 >= 0.3
  and makes a pass at the mean tau >= 25% dearer than a one-token pass. severity = extra / 1.5.
- ``budget_bound``: >= 10% of requests used all ``max_verify`` passes (from the run's policy
  parameters or its scenario), or the mean passes reach 97% of ``mean_verify``.
  severity = 0.3 + 0.7 * share at the cap.
- ``queueing_bound``: p95 of queueing >= 50% of p95 latency. severity = (ratio - 0.3) / 0.6.
- ``long_context_collapse``: acceptance in the longest-context bucket is >= 0.15 lower and
  <= 75% of the shortest one's. severity = 1.2 * relative drop.
- ``suspicious_acceptance``: with logged draft_prob q and target_prob p at temperature > 0,
  accepted tokens exceed E = sum min(1, p/q) over the positions reached by z >= 4 and by >= 10%
  (severity = 0.5 + observed / E - 1); greedy: >= 5% of accepted tokens had p < 0.01, which an
  argmax token hardly ever has (severity 0.5 + 5 * share).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import timing
from analysis.metrics import compute_metrics, tau_curve
from tracing import Trace
from tracing.errors import SpecsimError

HIGH, MEDIUM = 0.6, 0.3
MIN_FIT_CYCLES = 30  # spec cycles before acceptance/cost fits are trusted
MIN_CYCLES = 10  # cycles before measured shares are trusted
WHATIF_MAX_REQUESTS = 300  # the first requests a what-if fits, replays and resamples
WHATIF_DRAWS = 10  # replications + bootstrap resamples behind each interval


def level_of(severity: float) -> str:
    """"high" from 0.6, "medium" from 0.3, else "low"."""
    return "high" if severity >= HIGH else "medium" if severity >= MEDIUM else "low"


@dataclass
class Finding:
    """One diagnosed bottleneck: what, how bad, the numbers behind it, and what to do.

    ``evidence``: the measured numbers the detector used. ``predicted`` (empty without what-if):
    ``overrides`` (the best change, as scenario keys), ``p50_s``, ``p95_s``,
    ``speedup_vs_target_only``, ``tokens_per_cycle``, ``truncated_requests`` of the simulated
    run with it; ``baseline`` (the same figures replaying the trace unchanged); ``alternatives``
    (every change tried); ``improves`` (p95 down >= 1% or fewer truncated requests); ``assumes``
    (overrides applied to baseline and changes alike, e.g. the wanted output length); or just
    ``error`` when the trace could not be replayed.
    """

    kind: str
    severity: float
    title: str
    evidence: dict[str, Any]
    recommendation: str
    predicted: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list, repr=False)
    base_overrides: dict[str, Any] = field(default_factory=dict, repr=False)
    level: str = ""
    engine_flags: list[str] = field(default_factory=list)  # the engine's own flags for it

    def __post_init__(self) -> None:
        self.severity = float(min(1.0, max(0.0, self.severity)))
        self.level = level_of(self.severity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the ``diagnose --json`` finding)."""
        d = asdict(self)
        d.pop("overrides")
        d.pop("base_overrides")
        if not d["engine_flags"]:  # only a llama.cpp trace's findings carry its flags
            d.pop("engine_flags")
        return d


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _best_tau(m: dict[str, Any], below: float) -> tuple[dict[str, float], dict[str, float]]:
    """The fastest tau >= 1 below ``below`` and the curve point of the current (rounded) tau."""
    top = max(1, math.ceil(m["mean_tau"]))
    curve = tau_curve(m, top)
    now = curve[min(len(curve) - 1, max(1, round(m["mean_tau"])))]
    shorter = [p for p in curve[1:] if p["tau"] < below] or [now]
    return max(shorter, key=lambda p: p["tokens_per_s"]), now


def _tau_overrides(taus: list[int]) -> list[dict[str, Any]]:
    return [{"policy.name": "fixed", "policy.tau": t} for t in sorted(set(taus)) if t >= 1]


def _current_tau(trace: Trace, m: dict[str, Any]) -> int:
    """The draft length the trace runs: its fixed tau, else the rounded mean."""
    tau = (trace.meta.policy_params or {}).get("tau")
    if trace.meta.policy == "fixed" and isinstance(tau, int | float) and not isinstance(tau, bool):
        return int(tau)
    return max(1, round(m["mean_tau"]))


DRAFT_KINDS = {"model": "a smaller model", "layerskip": "layer skipping", "ngram": "n-gram lookup"}


def draft_kind(name: str) -> str:
    """``ngram``, ``layerskip``, ``none`` or ``model`` from a trace's draft name."""
    head = (name or "").strip().lower().split(":")[0].split()[0] if (name or "").strip() else ""
    return head if head in ("ngram", "layerskip", "none") else "model"


def _other_drafts(trace: Trace) -> str:
    """The cheaper draft kinds to suggest: every kind but the one the trace runs."""
    own = draft_kind(trace.meta.draft_model)
    names = [text for kind, text in DRAFT_KINDS.items() if kind != own]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


# --- detectors: (trace, metrics) -> Finding | None --------------------------------------------


def _not_paying(trace: Trace, m: dict[str, Any]) -> Finding | None:
    speedup = m["speedup_vs_target_only"]
    if speedup is None or m["spec_cycles"] < MIN_CYCLES or speedup >= 0.97:  # None: no split
        return None
    best, _ = _best_tau(m, below=m["mean_tau"] + 1)
    target_only = 1.0 / m["costs"]["target_only_token_s"] if m["costs"]["target_only_token_s"] else 0.0
    pays = best["tokens_per_s"] > target_only * 1.03
    cur = _current_tau(trace, m)
    if pays and int(best["tau"]) < cur:
        advice = f"shorten the draft to tau={int(best['tau'])} or use a cheaper/better-aligned draft"
    elif pays:
        advice = "use a cheaper or better-aligned draft, or decode target-only (policy target_only)"
    else:
        advice = "decode target-only (policy target_only) or find a better-aligned draft"
    return Finding(
        "speculation_not_paying",
        0.6 + 2.0 * (1.0 - speedup),
        f"Speculation is slower than target-only decoding ({speedup:.2f}x)",
        {
            "speedup_vs_target_only": speedup,
            "tokens_per_cycle": m["tokens_per_cycle"],
            "draft_acceptance_rate": m["draft_acceptance_rate"],
            "draft_to_target_cost": m["costs"]["draft_to_target_cost"],
            "target_only_token_s": m["costs"]["target_only_token_s"],
            "s_per_output_token": m["costs"]["s_per_output_token"],
        },
        advice,
        overrides=[{"policy.name": "target_only"}, *_tau_overrides([1, int(best["tau"])])],
    )


def _over_speculation(trace: Trace, m: dict[str, Any]) -> Finding | None:
    wasted, frac = m["wasted_draft_fraction"], m["mean_accepted_fraction"]
    if m["spec_cycles"] < MIN_FIT_CYCLES or wasted < 0.5 or frac >= 0.4 or m["mean_tau"] < 2:
        return None
    if m["verify_fit"] is None:  # the best tau needs draft and verify costs: no split here
        return None
    best, now = _best_tau(m, below=m["mean_tau"])
    gain = best["tokens_per_s"] / now["tokens_per_s"] - 1.0 if now["tokens_per_s"] else 0.0
    if gain < 0.08:
        return None
    tau = int(best["tau"])
    return Finding(
        "over_speculation",
        0.3 + 1.5 * gain,
        f"Drafts too long: {wasted:.0%} of drafted tokens are thrown away",
        {
            "mean_tau": m["mean_tau"],
            "mean_accepted": m["mean_accepted"],
            "wasted_draft_fraction": wasted,
            "wasted_draft_s": m["wasted_draft_s"],
            "acceptance_hazard_by_position": m["acceptance_hazard_by_position"][:8],
            "best_tau": tau,
            "model_gain": gain,
        },
        f"draft at most tau={tau} (expected {gain:.0%} more tokens/s on the measured acceptance "
        "and costs), or use an adaptive policy",
        overrides=[*_tau_overrides([tau - 1, tau, tau + 1]), {"policy.name": "adaptive"}],
    )


def _draft_bound(trace: Trace, m: dict[str, Any]) -> Finding | None:
    if m["cycle_time_share"] is None:  # no draft/verify split in the trace
        return None
    share = m["cycle_time_share"]["draft"]
    ratio = m["costs"]["draft_to_target_cost"]
    if m["spec_cycles"] < MIN_CYCLES or share < 0.35 or ratio < 0.15:
        return None
    step = m["costs"]["draft_step_s"]
    tau = max(1, round(m["mean_tau"]))
    return Finding(
        "draft_bound",
        1.5 * (share - 0.3) + (ratio - 0.15),
        f"Drafting takes {share:.0%} of each cycle (a draft step costs {ratio:.0%} of a target step)",
        {
            "draft_time_share": share,
            "draft_step_s": step,
            "draft_to_target_cost": ratio,
            "mean_accepted": m["mean_accepted"],
            "draft_s_per_accepted_token": m["time_s"]["draft"] / max(1, m["accepted_tokens"]),
        },
        f"use a cheaper draft ({_other_drafts(trace)}) or draft fewer "
        f"tokens (tau={max(1, tau - 2)}..{max(1, tau - 1)})",
        overrides=[{"draft.step_s": step / 2.0}, {"draft.step_s": step / 4.0},
                   *_tau_overrides([tau - 1, tau - 2])],
    )


def _verify_not_parallel(trace: Trace, m: dict[str, Any]) -> Finding | None:
    fit = m["verify_fit"]
    if fit is None:  # no draft/verify split in the trace
        return None
    extra = fit["ratio"] * m["mean_tau"]
    if (m["cycles"] < MIN_FIT_CYCLES or fit["tau_levels"] < 2 or fit["ratio"] < 0.1
            or fit["r2"] < 0.3 or extra < 0.25):
        return None
    best, _ = _best_tau(m, below=m["mean_tau"] + 1)
    tau = int(best["tau"])
    return Finding(
        "verify_not_parallel",
        extra / 1.5,
        f"Verification is not parallel: each extra token scored adds {fit['ratio']:.0%} "
        "of a one-token pass",
        {
            "verify_intercept_s": fit["intercept_s"],
            "verify_slope_s_per_token": fit["slope_s_per_token"],
            "slope_ratio": fit["ratio"],
            "r2": fit["r2"],
            "mean_tau": m["mean_tau"],
            "extra_verify_at_mean_tau": extra,
        },
        (f"draft fewer tokens on this device (tau={tau} instead of {_current_tau(trace, m)}), or "
         if tau < _current_tau(trace, m) else
         f"the current draft length (tau={_current_tau(trace, m)}) is already the model's best on "
         "this device; ")
        + "verify on a GPU where a pass is flat in the tokens scored",
        overrides=_tau_overrides([tau - 1, tau, tau + 1]),
    )


def _verify_caps(trace: Trace) -> tuple[int, float]:
    params = dict(trace.meta.policy_params or {})
    budget = ((trace.meta.extra or {}).get("scenario") or {}).get("budget") or {}
    cap = int(params.get("max_verify") or params.get("budget") or budget.get("max_verify_per_request") or 0)
    mean = float(params.get("mean_verify") or budget.get("mean_verify_per_request") or 0.0)
    return cap, mean


def _budget_bound(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def _queueing_bound(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def _long_context(trace: Trace, m: dict[str, Any]) -> Finding | None:
    buckets = [b for b in m["context_buckets"] if b["cycles"] >= MIN_FIT_CYCLES]
    if len(buckets) < 2:
        return None
    first, last = buckets[0]["acceptance_rate"], buckets[-1]["acceptance_rate"]
    drop = first - last
    if first <= 0 or drop < 0.15 or last > 0.75 * first:
        return None
    fall = next(b for b in buckets if b["acceptance_rate"] < first - 0.15)
    return Finding(
        "long_context_collapse",
        1.2 * drop / first,
        f"Acceptance collapses with context: {first:.2f} below {buckets[0]['context_hi']} tokens, "
        f"{last:.2f} from {buckets[-1]['context_lo']}",
        {
            "acceptance_short": first,
            "acceptance_long": last,
            "falls_from_context_tokens": fall["context_lo"],
            "buckets": [[b["context_lo"], b["context_hi"], b["acceptance_rate"]] for b in buckets],
        },
        f"stop or shorten speculation past ~{fall['context_lo']} tokens of context ("
        + ("tune the adaptive policy to back off sooner" if trace.meta.policy == "adaptive"
           else "an adaptive policy does this online")
        + "), or use a draft trained for long contexts",
        overrides=[{"policy.name": "adaptive"}, *_tau_overrides([1, 2])],
    )


def _list_column(cycles: pd.DataFrame, name: str) -> Any:
    """An Arrow list array of a per-position column (None when absent or all null)."""
    if name not in cycles.columns:
        return None
    arr = pa.array(cycles[name], type=pa.list_(pa.float64()))
    return arr if arr.null_count < len(arr) else None


def _suspicious(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def _unstable_timing(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


DETECTORS: dict[str, Callable[[Trace, dict[str, Any]], Finding | None]] = {
    "speculation_not_paying": _not_paying,
    "over_speculation": _over_speculation,
    "draft_bound": _draft_bound,
    "verify_not_parallel": _verify_not_parallel,
    "budget_bound": _budget_bound,
    "queueing_bound": _queueing_bound,
    "long_context_collapse": _long_context,
    "suspicious_acceptance": _suspicious,
    "unstable_timing": _unstable_timing,
}
KINDS: tuple[str, ...] = tuple(DETECTORS)


def diagnose(
    trace: Trace,
    *,
    whatif: bool = True,
    metrics: dict[str, Any] | None = None,
    draws: int | None = None,
) -> list[Finding]:
    """Findings ordered by severity (highest first); ``whatif`` simulates each recommendation
    (``draws`` behind each interval: :data:`WHATIF_DRAWS` by default)."""
    m = metrics if metrics is not None else compute_metrics(trace)
    if m["cycles"] == 0:
        raise SpecsimError(f"{trace.name}: no cycles to diagnose")
    findings = [f for f in (d(trace, m) for d in DETECTORS.values()) if f is not None]
    findings.sort(key=lambda f: -f.severity)
    if whatif:
        predict(trace, findings, draws=draws)
    from analysis.engine_flags import annotate

    annotate(trace, findings)  # llama.cpp's flag names for a llama.cpp trace
    return findings


# --- what-ifs: the simulator's answer to each recommendation ----------------------------------


def _describe(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in overrides.items())


def _change_text(run: dict[str, Any], key: str) -> str:
    """``p95 3% lower, 95% interval 10% lower to 2% higher``: the change as a ratio (its
    interval on a log scale, :func:`sim.sweep.intervals.ratio_text`)."""
    from sim.sweep.intervals import ratio_text

    return ratio_text(key.removesuffix("_s"), (run.get("change_ratio") or {}).get(key),
                      (run.get("change_ratio_ci95") or {}).get(key))


def _decided_tau(text: str, overrides: dict[str, Any]) -> str:
    """The cost curve's "tau=N is already the best" replaced by the decision's tau when the
    simulation surely finds a better one (the finding and the what-if never disagree)."""
    import re

    tau = overrides.get("policy.tau")
    if tau is None:
        return text
    return re.sub(r"the current draft length \(tau=(\d+)\) is already the model's best on "
                  r"this device; ",
                  lambda m: f"draft tau={tau} instead of {m.group(1)} on this device (the "
                  "simulated decision), or ", text)


def _choose(runs: list[dict[str, Any]], start: dict[str, Any], start_draws: list[Any],
            draws: list[list[Any]], *, budget: bool) -> dict[str, Any]:
    """The run to recommend, by :func:`sim.sweep.decide.decide` (objective p95) with the trace's own
    configuration as the incumbent: a change is named (``improves``) only when its paired
    interval says it helps; when none does, the lowest p95 tried is returned for the text. For
    ``budget_bound`` a change that surely truncates fewer requests (:func:`improves`) comes
    first. Sets each run's ``improves``."""
    from sim.sweep.decide import Option, better, decide

    incumbent = Option({}, start, start_draws)
    options = [Option(r["overrides"], r, d) for r, d in zip(runs, draws, strict=True)]
    for r, o in zip(runs, options, strict=True):
        r["improves"] = (improves(r, truncation=True) if budget
                         else better(o, incumbent, "p95"))
    if budget and any(r["improves"] for r in runs):
        return min((r for r in runs if r["improves"]),
                   key=lambda r: (r["truncated_requests"], r["p95_s"]))
    d = decide([incumbent, *options], incumbent=0)
    if d.best is not None and not d.kept_incumbent:
        return runs[d.best - 1]
    return min(runs, key=lambda r: r["p95_s"])


def improves(run: dict[str, Any], *, truncation: bool = False) -> bool:
    """True when an interval of the change lies below 0: p95 (p50 not surely worse) or p50 (p95
    not surely worse), or -- with ``truncation`` -- the truncated requests."""
    from sim.sweep.intervals import above_zero, below_zero

    ci = run.get("change_ci95") or {}
    p50, p95 = ci.get("p50_s"), ci.get("p95_s")
    faster = (below_zero(p95) and not above_zero(p50)) or (below_zero(p50) and not above_zero(p95))
    fewer = truncation and below_zero(ci.get("truncated_requests"))
    return bool(faster or fewer)


def predict(trace: Trace, findings: list[Finding], *, seed: int = 0, draws: int | None = None) -> None:
    """Fill each finding's ``predicted`` with simulated figures of its candidate changes, each with
    95% intervals (:mod:`sim.sweep.intervals`: replications plus a bootstrap over the trace's
    requests), and quantify its recommendation.

    A candidate equal to the trace's own configuration is never tried. ``improves`` is true only
    when an interval of the change against the replayed baseline lies below 0
    (:func:`improves`); the best candidate is the improving one with the lowest p95 (fewest
    truncated requests first for ``budget_bound``), else the lowest p95 tried, shown as such. A
    trace the simulator cannot replay leaves ``predicted = {"error": ...}``."""
    if not any(f.overrides for f in findings):
        return
    from analysis.metrics import first_requests
    from sim import scenario_from_trace, simulate
    from sim.sweep.intervals import basis, brief, intervals, make_draws, run_draws

    n_draws = WHATIF_DRAWS if draws is None else draws
    trace = first_requests(trace, WHATIF_MAX_REQUESTS)  # fits, replays and resamples stay small
    try:
        base = scenario_from_trace(trace)
        simulate(base, trace, seed=seed)
        samples = make_draws(base, trace, n_draws, seed=seed)
    except SpecsimError as exc:
        for f in findings:
            if f.overrides:
                f.predicted = {"error": str(exc)}
        return
    how = basis(trace, n_draws)
    cache: dict[tuple[tuple[str, Any], ...], tuple[dict[str, Any], list[Any]] | str] = {}

    def run(ov: dict[str, Any]) -> tuple[dict[str, Any], list[Any]] | str:
        key = tuple(sorted(ov.items()))
        if key not in cache:
            try:
                scenario = base.with_overrides(ov) if ov else base
                figs = simulate(scenario, trace, seed=seed).figures
                # how the costs were made (trace / profile / catalog, and a catalog's band)
                est = {**brief(figs), "basis": figs.get("basis"), "band": figs.get("band")}
                cache[key] = (est, run_draws(samples, ov))
            except SpecsimError as exc:
                cache[key] = str(exc)
        return cache[key]

    for f in findings:
        if not f.overrides:
            continue
        start_run = run(f.base_overrides)
        if isinstance(start_run, str):
            f.predicted = {"error": start_run}
            continue
        start_est, start_draws = start_run
        start = {**start_est, **intervals(start_est, start_draws)}
        own = base.with_overrides(f.base_overrides) if f.base_overrides else base
        runs, skipped = [], []
        run_draws_of: list[list[Any]] = []
        for ov in f.overrides:
            merged = {**f.base_overrides, **ov}
            try:
                if base.with_overrides(merged) == own:
                    skipped.append(ov)  # what the trace already runs: never recommended
                    continue
            except SpecsimError:
                continue
            got = run(merged)
            if isinstance(got, dict | tuple) and not isinstance(got, str):
                est, vals = got
                runs.append({"overrides": ov, **est,
                             **intervals(est, vals, start_est, start_draws)})
                run_draws_of.append(vals)
        if not runs:
            f.predicted = {"error": "no candidate change could be simulated", "baseline": start,
                           "interval": how}
            if skipped:
                f.predicted["already_runs"] = skipped
            continue
        budget = f.kind == "budget_bound"
        for r in runs:
            r["improves"] = improves(r, truncation=budget)
        best = _choose(runs, start, start_draws, run_draws_of, budget=budget)
        f.predicted = {**best, "baseline": start, "alternatives": runs, "interval": how}
        if skipped:
            f.predicted["already_runs"] = skipped
        if f.base_overrides:
            f.predicted["assumes"] = f.base_overrides
        figures = f"{_change_text(best, 'p50_s')}, {_change_text(best, 'p95_s')}"
        if f.kind == "suspicious_acceptance":
            f.predicted.pop("improves", None)
            f.recommendation += (f". With the acceptance p/q allow the simulator predicts "
                                 f"{figures}")
            continue
        if best["improves"]:
            f.recommendation = _decided_tau(f.recommendation, best["overrides"])
            f.recommendation += f". Simulated with {_describe(best['overrides'])}: {figures}"
        else:
            f.recommendation += (
                ". The simulator cannot tell any change tried here from the current "
                f"configuration within the noise; the best tried, {_describe(best['overrides'])}, "
                f"gives {figures}")
        speed, speed0 = best["speedup_vs_target_only"], start["speedup_vs_target_only"]
        if speed is not None and speed0:
            f.recommendation += f", speedup x{speed0:.2f} -> x{speed:.2f}"
        if budget:
            f.recommendation += (
                f", truncated requests {start['truncated_requests']:.0f} -> "
                f"{best['truncated_requests']:.0f}")
        f.recommendation += f" ({how['text']})"


__all__ = ["DETECTORS", "KINDS", "Finding", "diagnose", "improves", "level_of", "predict"]
