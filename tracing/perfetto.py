"""Export to Chrome/Perfetto trace-event JSON (open it at ui.perfetto.dev or chrome://tracing).

Each request is a track (a process named ``request <id>`` with one thread, its id kept exactly in
the args): a ``prefill`` slice, then per cycle a ``draft`` and a ``verify`` slice and an
``overhead`` slice when it is non-zero -- or one ``step`` slice of ``cycle_s`` when the trace has
no draft/verify split -- each carrying the cycle's numbers as args; counters ``tau`` and
``accepted`` step at each cycle. Times are microseconds, as the format wants.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tracing.trace import Trace

_US = 1e6


def perfetto_events(trace: Trace) -> list[dict[str, Any]]:
    """The trace-event list (metadata, slices and counters)."""
    events: list[dict[str, Any]] = []
    requests = trace.requests.set_index("request_id") if len(trace.requests) else None
    # pids are 1, 2, ... in order of appearance (pid 0 is reserved in some viewers); string ids
    # cannot be pids, so the id itself lives in the track name and the args.
    pids: dict[Any, int] = {}
    for rid in dict.fromkeys(
        [*trace.requests["request_id"].tolist(), *trace.cycles["request_id"].unique().tolist()]
    ):
        pid = pids[rid] = len(pids) + 1
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 1,
                       "args": {"name": f"request {rid}", "request_id": rid}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 1,
                       "args": {"sort_index": pid}})
        if requests is not None and rid in requests.index:
            req = requests.loc[rid]
            args: dict[str, Any] = {"request_id": rid, "prompt_tokens": int(req["prompt_tokens"])}
            if "stop_reason" in req.index and isinstance(req["stop_reason"], str):
                args["stop_reason"] = req["stop_reason"]
            events.append({"ph": "X", "name": "prefill", "cat": "prefill", "pid": pid, "tid": 1,
                           "ts": float(req["start_s"]) * _US, "dur": float(req["prefill_s"]) * _US,
                           "args": args})
    cols = ["request_id", "cycle", "start_s", "tau", "accepted", "emitted", "draft_s",
            "verify_s", "overhead_s", "context_tokens", "cycle_s"]
    batch = (trace.cycles["batch_size"].tolist() if "batch_size" in trace.cycles.columns
             else [None] * len(trace.cycles))
    for rid, cycle, start, tau, acc, emitted, draft, verify, overhead, ctx, step, b in zip(
        *(trace.cycles[c].tolist() for c in cols), batch, strict=True
    ):
        pid = pids[rid]
        args = {"request_id": rid, "cycle": cycle, "tau": tau, "accepted": acc,
                "emitted": emitted, "context_tokens": ctx}
        if b is not None and not math.isnan(b):
            args["batch_size"] = int(b)
        t = start * _US
        if math.isnan(draft):  # no split: one slice for the whole step
            events.append({"ph": "X", "name": "step", "cat": "step", "pid": pid, "tid": 1,
                           "ts": t, "dur": step * _US, "args": args})
        else:
            if tau > 0:
                events.append({"ph": "X", "name": "draft", "cat": "draft", "pid": pid, "tid": 1,
                               "ts": t, "dur": draft * _US, "args": args})
            t_verify = t + draft * _US
            events.append({"ph": "X", "name": "verify" if tau > 0 else "target step",
                           "cat": "verify", "pid": pid, "tid": 1, "ts": t_verify,
                           "dur": verify * _US, "args": args})
            if overhead > 0:
                events.append({"ph": "X", "name": "overhead", "cat": "overhead", "pid": pid,
                               "tid": 1, "ts": t_verify + verify * _US, "dur": overhead * _US})
        events.append({"ph": "C", "name": "tau", "pid": pid, "ts": t, "args": {"tau": tau}})
        events.append({"ph": "C", "name": "accepted", "pid": pid, "ts": t,
                       "args": {"accepted": acc}})
    return events


def to_perfetto(trace: Trace) -> dict[str, Any]:
    """The whole trace-event JSON object."""
    meta = trace.meta
    return {
        "traceEvents": perfetto_events(trace),
        "displayTimeUnit": "ms",
        "otherData": {"source": meta.source, "target_model": meta.target_model,
                      "draft_model": meta.draft_model, "policy": meta.policy},
    }


def write_perfetto(trace: Trace, path: str | Path) -> None:
    """Write the trace-event JSON to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_perfetto(trace), f, separators=(",", ":"))
