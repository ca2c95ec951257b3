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
  pays per request can still lose under load.
* ``utilization``: fraction of the run the server was busy. ``overloaded``: an open workload
  whose backlog at the last arrival exceeds max(10, 4 * max_batch, 5% of the requests) -- the
  queue grows without bound at that rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracing.schema import CycleRecord
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
    batch_rows: list[CycleRecord] | None = None  # batch server: every cycle, in step order

    # Cycle columns: lists of per-request numpy chunks (stream) or per-cycle scalars (batch).
    cycles: dict[str, list[Any]] = field(default_factory=dict)
    draft_probs: list[list[float] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("start_s", "first_token_s", "end_s", "arrival_s", "prefill_s"):
            setattr(self, name, np.zeros(self.n))
        self.output_tokens = np.zeros(self.n, dtype=np.int64)
        self.verify_passes = np.zeros(self.n, dtype=np.int64)
        self.cycles = {k: [] for k in CYCLE_KEYS}

    def batch_columns(self) -> None:
        """Batch server, after the run: its cycle records -> the cycle columns."""
        rows = self.batch_rows or []
        for key in CYCLE_KEYS:
            self.cycles[key] = [getattr(r, key) for r in rows]
        self.draft_probs = [r.draft_prob for r in rows]


CYCLE_KEYS = (
    "request_id", "cycle", "start_s", "tau", "accepted", "emitted",
    "draft_s", "verify_s", "overhead_s", "context_tokens",
)  # fmt: skip


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


def target_only_latencies(
    arrival: np.ndarray,
    closed: bool,
    concurrency: int,
    service_s: np.ndarray,
) -> np.ndarray:
    """Latencies of a single FIFO server (Lindley's recursion), per request in order.

    ``arrival`` is ignored for closed workloads: request i arrives when request i - concurrency
    completes (the first ``concurrency`` at 0).
    """
    n = service_s.size
    end = np.zeros(n)
    arr = np.zeros(n)
    free = 0.0
    services = service_s.tolist()
    arrivals = arrival.tolist()
    for i in range(n):
        a = (end[i - concurrency] if i >= concurrency else 0.0) if closed else arrivals[i]
        arr[i] = a
        free = max(free, a) + services[i]
        end[i] = free
    return end - arr
