"""Steps an engine counts only in total: laid out as evenly as the totals allow."""

from __future__ import annotations


def even_steps(n_steps: int, drafted: int, accepted: int) -> list[tuple[int, int]]:
    """``n_steps`` (drafted, accepted) pairs summing to the totals, each as close to the mean as
    integers allow, the larger values first (accepted never above drafted)."""
    if n_steps <= 0:
        return []
    d_lo, d_extra = divmod(drafted, n_steps)
    a_lo, a_extra = divmod(accepted, n_steps)
    steps = []
    for i in range(n_steps):
        d = d_lo + (1 if i < d_extra else 0)
        a = a_lo + (1 if i < a_extra else 0)
        steps.append((d, min(a, d)))
    return steps
