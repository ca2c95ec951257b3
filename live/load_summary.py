"""The summary ``specsim load`` prints: latency, TTFT, TPOT, throughput and errors.

Definitions (the usual serving-benchmark ones, as vLLM's ``benchmark_serving``): latency = last
chunk - send; TTFT = first token's chunk - send; TPOT = (latency - TTFT) / (output tokens - 1)
over requests with more than one token; throughput = output tokens of completed requests / the
run's wall time. Failed requests (HTTP errors, 503s, broken streams, malformed replies) count in
``errors`` and ``error_kinds``, requests cut by a SIGINT in ``interrupted``, and neither in the
figures; a figure with no request to measure is None (printed ``n/a``), never 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tracing.summary import percentiles

if TYPE_CHECKING:  # for the annotations only: live.load imports this module to summarize
    from live.load import ClientRecord


def summarize_records(records: list[ClientRecord], wall_s: float) -> dict[str, Any]:
    """The summary of a load run (seconds)."""
    ok = [r for r in records if r.error is None and r.end_s is not None and not r.interrupted]
    latency = [r.end_s - r.send_s for r in ok if r.end_s is not None]
    ttft = [r.first_token_s - r.send_s for r in ok if r.first_token_s is not None]
    tpot = [((r.end_s or 0.0) - r.first_token_s) / (r.output_tokens - 1) for r in ok
            if r.first_token_s is not None and r.output_tokens > 1]
    tokens = sum(r.output_tokens for r in ok)
    kinds: dict[str, int] = {}
    for r in records:
        if r.error is not None and not r.interrupted:
            key = f"HTTP {r.status}" if r.status not in (None, 200) else r.error.split(":")[0]
            kinds[key] = kinds.get(key, 0) + 1
    chunks = [len(r.chunks) for r in ok]
    return {
        "requests": len(records), "completed": len(ok),
        "errors": sum(r.error is not None and not r.interrupted for r in records),
        "error_kinds": kinds, "duration_s": wall_s,
        "throughput_tok_s": tokens / wall_s if wall_s > 0 else 0.0,
        "request_throughput_per_s": len(ok) / wall_s if wall_s > 0 else 0.0,
        "output_tokens": tokens,
        "tokens_per_chunk": tokens / sum(chunks) if sum(chunks) else 0.0,
        "latency_s": _stats(latency),
        "ttft_s": _stats(ttft),
        "tpot_s": _stats(tpot),
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    """mean/p50/p95/p99, or None for each when nothing was measured."""
    if not values:
        return {"mean": None, "p50": None, "p95": None, "p99": None}
    return dict(percentiles(np.asarray(values)))


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few aligned lines of text."""
    def row(name: str, stats: dict[str, Any]) -> str:
        if stats["mean"] is None:
            return f"  {name:<8} n/a (no completed request)"
        return (f"  {name:<8} mean {stats['mean'] * 1e3:9.1f}  p50 {stats['p50'] * 1e3:9.1f}  "
                f"p95 {stats['p95'] * 1e3:9.1f}  p99 {stats['p99'] * 1e3:9.1f}  ms")

    lines = [
        f"{summary['completed']}/{summary['requests']} requests completed in "
        f"{summary['duration_s']:.1f} s; {summary['errors']} errors"
        + (f" ({', '.join(f'{k}: {v}' for k, v in summary['error_kinds'].items())})"
           if summary["error_kinds"] else ""),
        f"  throughput {summary['throughput_tok_s']:.1f} tok/s, "
        f"{summary['request_throughput_per_s']:.2f} req/s; "
        f"{summary['tokens_per_chunk']:.2f} tokens per chunk",
        row("latency", summary["latency_s"]), row("TTFT", summary["ttft_s"]),
        row("TPOT", summary["tpot_s"]),
    ]
    if summary.get("interrupted"):
        lines.append(f"  interrupted: {summary['interrupted']} requests cut by SIGINT (marked "
                     "'interrupted' in the trace)")
    if "out" in summary:
        lines.append(f"  trace {summary['out']}")
    return "\n".join(lines)
