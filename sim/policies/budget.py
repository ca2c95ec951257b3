"""Can a verify budget be met? Tokens per request a ``[budget]`` reaches vs what is asked.

A budget of ``B`` verify passes per request (``max_verify_per_request``, or the pool's mean
``mean_verify_per_request``; the smaller when both are set) reaches about ``B * t`` output tokens
per request, ``t`` the tokens one verify pass yields (output tokens over verify passes). The
budget never changes the draft length (:class:`sim.policies.library.BudgetedPolicy`), so ``t`` is that of
the policy at the acceptance the run replays: measured on the run itself (:func:`budget_reach`;
``diagnose`` measures it on the trace). The workload asks ``N`` tokens per request (the mean
of the lengths asked, before any truncation) and needs ``N / t`` passes. Infeasible when
``B * t < N``: the budget then truncates requests whatever is simulated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.scenario import BudgetConfig


def budget_passes(budget: BudgetConfig) -> float:
    """The binding passes per request of a ``[budget]`` (0: none)."""
    caps = [float(x) for x in (budget.max_verify_per_request, budget.mean_verify_per_request)
            if x]
    return min(caps) if caps else 0.0


def reach(passes: float, tokens_per_pass: float, asked_tokens: float,
          beyond: int | None = None) -> dict[str, Any]:
    """The ``budget`` figure: ``passes_per_request``, ``tokens_per_pass``, ``reachable_tokens``,
    ``asked_tokens`` (mean), ``passes_needed`` and ``feasible``; with a hard cap per request,
    ``requests_beyond_reach`` (``beyond``: requests asking more than the cap reaches) -- then
    feasible only when there is none."""
    reachable = passes * tokens_per_pass
    needed = asked_tokens / tokens_per_pass if tokens_per_pass > 0 else float("inf")
    feasible = reachable >= asked_tokens * (1 - 1e-9) and not beyond
    out: dict[str, Any] = {
        "passes_per_request": passes,
        "tokens_per_pass": round(tokens_per_pass, 4),
        "reachable_tokens": round(reachable, 2),
        "asked_tokens": round(asked_tokens, 2),
        "passes_needed": round(needed, 2),
        "feasible": bool(feasible),
    }
    if beyond is not None:
        out["requests_beyond_reach"] = int(beyond)
    return out


def budget_reach(budget: BudgetConfig, output_tokens: int, verify_passes: int,
                 asked: np.ndarray) -> dict[str, Any] | None:
    """A run's budget figure from its output tokens, verify passes and the lengths its requests
    asked (None without a budget or without a pass run)."""
    passes = budget_passes(budget)
    if passes <= 0 or verify_passes <= 0 or not asked.size:
        return None
    t = output_tokens / verify_passes
    hard = budget.max_verify_per_request
    beyond = int(np.count_nonzero(asked > hard * t)) if hard else None
    return reach(passes, t, float(asked.mean()), beyond)


def describe(b: dict[str, Any]) -> str:
    """One line: ``budget infeasible: 2 verify passes per request reach ~5.1 tokens at 2.55
    tokens per pass; the workload asks 120 (~47 passes per request)``."""
    head = "budget infeasible" if not b["feasible"] else "budget"
    beyond = b.get("requests_beyond_reach")
    more = f"; {beyond} requests ask more than that" if beyond else ""
    return (f"{head}: {b['passes_per_request']:g} verify passes per request reach "
            f"~{b['reachable_tokens']:.1f} tokens at {b['tokens_per_pass']:.2f} tokens per pass; "
            f"the workload asks {b['asked_tokens']:.0f} (~{b['passes_needed']:.0f} passes per "
            f"request){more}")
