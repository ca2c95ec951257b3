"""Detectors of the speculation cycle's costs and acceptance: is drafting worth it, are drafts
too long, is the draft too dear, is verification flat in the tokens scored, does acceptance
collapse with context. Each is ``(trace, metrics) -> Finding | None``; thresholds and
severities are listed in :mod:`analysis.diagnose`.
"""

from __future__ import annotations

import math
from typing import Any

from analysis.finding import MIN_CYCLES, MIN_FIT_CYCLES, Finding
from analysis.metrics import tau_curve
from tracing import Trace


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


def not_paying(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def over_speculation(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def draft_bound(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def verify_not_parallel(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


def long_context(trace: Trace, m: dict[str, Any]) -> Finding | None:
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


__all__ = [
    "DRAFT_KINDS",
    "draft_bound",
    "draft_kind",
    "long_context",
    "not_paying",
    "over_speculation",
    "verify_not_parallel",
]
