"""The record of a simulated run (:class:`Log`) and its figures (the ``simulate --json``
object), computed with numpy.

Definitions (seconds unless named otherwise; percentiles are numpy's linear ones):

* ``latency_s``: end - arrival; ``ttft_s``: first token - arrival; ``queue_s``: start - arrival;
  ``tpot_s``: (end - first token) / (output tokens - 1), requests with >= 2 tokens.
* ``tokens_per_cycle``: mean ``emitted`` over speculative cycles (tau > 0); over all cycles when
  there are none. ``acceptance_by_position``: vLLM's per-position acceptance (position i accepted
  / cycles that drafted i), first 16 positions. ``acceptance_rate``: accepted / drafted tokens. ``mean_tau``: mean tau of the
  speculative cycles.
* ``verify_passes_per_request``: mean target passes after prefill (= cycles) per request;
  ``verify_passes_max`` the largest; ``truncated_requests``: requests ended by their budget.
* ``throughput_tok_s``: output tokens / (last end - first arrival).
* ``speedup_vs_target_only``: mean latency of target-only decoding of the same workload on the
  same server (no budget) / this run's mean latency -- queueing included, so speculation that
  pays per request can still lose under load. When a budget truncated requests the two did
  unequal work, so it compares latency per output token instead: (baseline mean latency / mean
  tokens asked) / (this run's mean latency / mean tokens emitted).
* ``budget`` (runs with a ``[budget]``): what it can reach, :func:`sim.policies.budget.budget_reach`.
* ``utilization``: fraction of the run the server was busy. ``overloaded``: an open workload
  whose backlog at the last arrival exceeds max(10, 4 * max_batch, 5% of the requests) -- the
  queue grows without bound at that rate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracing.summary import acceptance_by_position


@dataclass
class Log:
    """What the run recorded: per-request arrays and per-cycle column lists (or array chunks)."""

    n: int
    start_s: np.ndarray = field(init=False)
    first_token_s: np.ndarray = field(init=False)
    end_s: np.ndarray = field(init=False)
    arrival_s: np.ndarray = field(init=False)
    prefill_s: np.ndarray = field(init=False)
    output_tokens: np.ndarray = field(init=False)
    verify_passes: np.ndarray = field(init=False)
    truncated: int = 0
    busy_s: float = 0.0
    backlog_at_last_arrival: int = 0
    stream_t0: np.ndarray | None = None  # stream server: when each request's first cycle began
    # dynamic stream server: (request, its cycles) in the order served
    served: list[tuple[int, int]] = field(default_factory=list)
    # batch server: per step, its cycles and the values they share
    steps: dict[str, list[Any]] = field(default_factory=dict)

    # Cycle columns: lists of numpy chunks (static stream) or of per-cycle values (the others).
    cycles: dict[str, list[Any]] = field(default_factory=dict)
    draft_probs: list[list[float] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("start_s", "first_token_s", "end_s", "arrival_s", "prefill_s"):
            setattr(self, name, np.zeros(self.n))
        self.output_tokens = np.zeros(self.n, dtype=np.int64)
        self.verify_passes = np.zeros(self.n, dtype=np.int64)
        self.cycles = {k: [] for k in CYCLE_KEYS}
        self.steps = {k: [] for k in ("cycles", "start_s", "draft_s", "verify_s")}

    def fill_batch_steps(self, overhead_s: float) -> None:
        """Batch server, after the run: the per-step columns spread over each step's cycles."""
        count = np.asarray(self.steps["cycles"], dtype=np.int64)
        for key in ("start_s", "draft_s", "verify_s"):
            self.cycles[key] = [np.repeat(np.asarray(self.steps[key], dtype=float), count)]
        self.cycles["overhead_s"] = [np.full(int(count.sum()), overhead_s)]

    def served_in_order(self) -> bool:
        """True when the single-stream servers served the requests in id order (FIFO of
        requests numbered in arrival order, always so far), so their cycle rows are grouped by
        request already (the static server keeps no ``served`` list: its rows are by id)."""
        ids = [r for r, _ in self.served]
        return all(a < b for a, b in itertools.pairwise(ids))

    def fill_stream_ids(self, overhead_s: float) -> None:
        """Dynamic stream server, after the run: the ``request_id``, ``cycle`` and
        ``overhead_s`` columns from the requests served (their cycles are contiguous rows)."""
        rid = np.array([r for r, _ in self.served], dtype=np.int64)
        count = np.array([c for _, c in self.served], dtype=np.int64)
        first = np.cumsum(count) - count
        total = int(count.sum())
        self.cycles["request_id"] = [np.repeat(rid, count)]
        self.cycles["cycle"] = [np.arange(total, dtype=np.int64) - np.repeat(first, count)]
        self.cycles["overhead_s"] = [np.full(total, overhead_s)]


CYCLE_KEYS = (
    "request_id", "cycle", "start_s", "tau", "accepted", "emitted",
    "draft_s", "verify_s", "overhead_s", "context_tokens",
)  # fmt: skip


QUANTILES = tuple(range(0, 101, 5))  # the percentiles of latency_quantiles_s


def latency_quantiles(requests: Any) -> list[float]:
    """Every 5th percentile (0..100) of a run's request latencies (``end_s - arrival_s`` of a
    trace's requests table): enough to read the share within any SLO (:func:`share_within`)."""
    latency = (requests["end_s"] - requests["arrival_s"]).to_numpy(float)
    return [round(float(v), 6) for v in np.percentile(latency, QUANTILES)] if latency.size else []


def share_within(quantiles: list[float], limit_s: float) -> float:
    """The share of requests whose latency is at most ``limit_s``, read off
    ``latency_quantiles_s`` (linear between its percentiles; 0 without any)."""
    if not quantiles:
        return 0.0
    q = np.maximum.accumulate(np.asarray(quantiles, dtype=float))
    if limit_s >= q[-1]:
        return 1.0
    if limit_s < q[0]:
        return 0.0
    return float(np.interp(limit_s, q, np.asarray(QUANTILES, dtype=float) / 100.0))


def _stats(x: np.ndarray, pcts: tuple[int, ...]) -> dict[str, float]:
    if x.size == 0:
        return {"mean": 0.0, **{f"p{p}": 0.0 for p in pcts}}
    out = {"mean": float(x.mean())}
    for p, v in zip(pcts, np.percentile(x, pcts), strict=True):
        out[f"p{p}"] = float(v)
    return out


def is_overloaded(open_workload: bool, backlog: int, requests: int, max_batch: int) -> bool:
    """The queue grows without bound: see the module docstring for the rule."""
    return open_workload and backlog > max(10, 4 * max_batch, 0.05 * requests)


def compute_figures(
    req: dict[str, np.ndarray],
    cyc: dict[str, np.ndarray],
    *,
    busy_s: float,
    truncated: int,
    overloaded: bool,
    baseline_mean_latency_s: float | None,
    asked_tokens: np.ndarray | None = None,
) -> dict[str, Any]:
    """Figures from per-request and per-cycle columns (named as in the trace schema)."""
    arrival, start, first, end = (
        req["arrival_s"],
        req["start_s"],
        req["first_token_s"],
        req["end_s"],
    )
    out_tokens, passes = req["output_tokens"], req["verify_passes"]
    latency = end - arrival
    many = out_tokens >= 2
    tpot = (end[many] - first[many]) / (out_tokens[many] - 1)
    tau, accepted, emitted = cyc["tau"], cyc["accepted"], cyc["emitted"]
    spec = tau > 0
    makespan = float(end.max() - arrival.min()) if end.size else 0.0
    drafted = int(tau.sum())
    mean_latency = float(latency.mean()) if latency.size else 0.0
    by_position, _ = acceptance_by_position(tau[spec], accepted[spec])
    speedup = None
    if baseline_mean_latency_s is not None and mean_latency > 0:
        speedup = baseline_mean_latency_s / mean_latency
        if truncated and asked_tokens is not None and asked_tokens.size and out_tokens.sum():
            # equal work: seconds per output token, the baseline decoding every token asked
            speedup = (baseline_mean_latency_s / float(asked_tokens.mean())) / (
                mean_latency / float(out_tokens.mean()))
    return {
        "requests": int(end.size),
        "cycles": int(tau.size),
        "output_tokens": int(out_tokens.sum()),
        "latency_s": _stats(latency, (50, 95, 99)),
        "ttft_s": _stats(first - arrival, (50, 95)),
        "queue_s": _stats(start - arrival, (50, 95)),
        "tpot_s": _stats(tpot, (50, 95)),
        "tokens_per_cycle": float(emitted[spec].mean() if spec.any() else emitted.mean())
        if tau.size
        else 0.0,
        "mean_tau": float(tau[spec].mean()) if spec.any() else 0.0,
        "acceptance_rate": float(accepted.sum() / drafted) if drafted else 0.0,
        "verify_passes_per_request": float(passes.mean()) if passes.size else 0.0,
        "verify_passes_max": int(passes.max()) if passes.size else 0,
        "truncated_requests": int(truncated),
        "throughput_tok_s": float(out_tokens.sum() / makespan) if makespan > 0 else 0.0,
        "speedup_vs_target_only": speedup,
        "utilization": float(min(1.0, busy_s / makespan)) if makespan > 0 else 0.0,
        "overloaded": bool(overloaded),
        "acceptance_by_position": [round(v, 4) for v in by_position[:16]],
    }
