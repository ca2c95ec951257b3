"""The report's serving-under-load section, for a server trace (``specsim serve --trace-out``).

Two figures: latency against batch size (:func:`analysis.load_figures.latency_by_batch`) and
the load curve this trace predicts -- p50/p95 latency and throughput of the trace's own
configuration and of target-only decoding against closed-loop concurrency 1, 2, 4, ... up to
twice the server's ``max_batch``, each simulated from this trace (its acceptance replayed, its
costs fitted, its batched verify profile scaled to its passes) with ``REPLICATIONS`` seeds and
a 95% interval. Where the two p50 curves cross is where speculation stops paying.

A trace is a server trace when its run metadata carries the server block ``specsim serve``
writes (``server.max_batch``) or its cycles carry ``batch_size``. Schema-v1 traces keep no
``batch_size``: the rows of one engine step share its ``start_s``, which gives it back.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from tracing.trace import Trace

REPLICATIONS = 5


def is_server_trace(trace: Trace) -> bool:
    """True for a continuous-batching server's trace."""
    server = (trace.meta.extra or {}).get("server")
    if isinstance(server, dict) and "max_batch" in server:
        return True
    c = trace.cycles
    return "batch_size" in c.columns and bool(c["batch_size"].notna().any())


def with_batch_sizes(trace: Trace) -> Trace:
    """The trace with a ``batch_size`` column (from the step groups when it has none)."""
    c = trace.cycles
    if "batch_size" in c.columns and c["batch_size"].notna().all():
        return trace
    c = c.copy()
    c["batch_size"] = c.groupby("start_s")["tau"].transform("size").astype("int64")
    if "cycle_s" not in c.columns or c["cycle_s"].isna().any():
        c["cycle_s"] = c["draft_s"] + c["verify_s"] + c["overhead_s"]
    return Trace(trace.meta, trace.requests, c, trace.path)


def predicted_curves(trace: Trace, loads: list[int]) -> list[dict[str, Any]]:
    """This trace's configuration and target-only, simulated at each concurrency."""
    from sim import scenario_from_trace
    from sim.calibrate.batching import max_batch_of
    from sim.sweep.replicate import replicate

    base = scenario_from_trace(trace)
    batch = max_batch_of(trace)
    out = []
    for label, extra in ((f"{trace.meta.draft_model or 'none'} {base.policy.spec()}", {}),
                         ("target-only", {"policy.name": "target_only"})):
        if extra and base.policy.name == "target_only":
            continue
        curve: dict[str, Any] = {"label": label, "kind": "predicted", "load": list(loads)}
        for key in ("p50_s", "p95_s", "throughput_tok_s", "p50_ci", "p95_ci"):
            curve[key] = []
        for c in loads:
            s = base.with_overrides({**extra, "workload.concurrency": c,
                                     "server.max_batch": batch})
            f = replicate(s, REPLICATIONS, trace).figures
            lat = f["latency_s"]
            curve["p50_s"].append(lat["p50"])
            curve["p95_s"].append(lat["p95"])
            curve["p50_ci"].append(lat.get("p50_ci"))
            curve["p95_ci"].append(lat.get("p95_ci"))
            curve["throughput_tok_s"].append(f["throughput_tok_s"])
        out.append(curve)
    return out


def load_figures(trace: Trace) -> list[tuple[str, go.Figure]]:
    """The section's figures ([] for a trace that is not a server trace)."""
    if not is_server_trace(trace) or len(trace.cycles) == 0:
        return []
    from analysis.load_figures import latency_by_batch, load_curve
    from sim.calibrate.batching import max_batch_of

    batch = max_batch_of(trace)
    loads = [1]
    while loads[-1] < 2 * batch:
        loads.append(loads[-1] * 2)
    curves = predicted_curves(trace, loads)
    title = (f"Load curve predicted from this trace (max batch {batch}; {REPLICATIONS} seeds, "
             "95% intervals)")
    return [("Latency against batch size", latency_by_batch(with_batch_sizes(trace))),
            ("Load curve (predicted)", load_curve(curves, "concurrency", title))]


__all__ = ["is_server_trace", "load_figures", "predicted_curves", "with_batch_sizes"]
