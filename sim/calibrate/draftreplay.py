"""A deterministic draft of another size, replayed exactly over a greedy run's recorded tokens.

In a greedy run the output does not depend on the draft, and the target accepts a drafted token
exactly when it is the output's next token. An n-gram (prompt lookup) draft is a deterministic
function of the context, so the cycles it would have run -- what it proposed and how much of it
was accepted -- follow from the prompt and output token ids alone (``specsim capture
--record-tokens`` writes them to ``TRACE.tokens.ndjson``): no model of acceptance at all.

:func:`replay_ngram` rebuilds a trace of run A as if its draft had been ``ngram:n=N``: A's
requests, timings and per-request speeds, with the replayed cycles, each priced by A's fitted
costs at that request's measured speed (:func:`sim.calibrate.costs.trace_speeds`), so that
calibrating the rebuilt trace gives back A's costs and speeds with the other draft's
acceptance. ``[draft] n = N`` (``whatif --vary draft.n=2,4``) replays it in calibration, and
``specsim validate`` predicts the ``draft`` pairs of n-gram runs with it.

Token records are found by request id, or -- for a trace whose ids were renumbered (a bootstrap
resample, :mod:`sim.sweep.intervals`) -- by the request's prompt text: in a greedy run the same prompt
gives the same output.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from tracing.errors import SpecsimError
from tracing.jsonl import token_ids_path
from tracing.trace import Trace


def draft_spec(name: str) -> tuple[str, int] | None:
    """``("ngram", n)`` / ``("layerskip", layers)`` with the live decoder's defaults (n 3,
    layers 8), None for another draft."""
    kind, _, options = (name or "").strip().partition(":")
    key, default = {"ngram": ("n", 3), "layerskip": ("layers", 8)}.get(kind, ("", 0))
    if not key:
        return None
    value = default
    for item in options.split(","):
        k, _, v = item.partition("=")
        if k.strip() == key and v.strip().isdigit():
            value = int(v)
    return kind, value


Tokens = tuple[list[int], list[int]]


def read_tokens(trace_path: str) -> dict[Any, Tokens]:
    """request id -> (prompt ids, output ids); {} when the trace has no token file."""
    path = token_ids_path(trace_path)
    if not path.exists():
        return {}
    out: dict[Any, Tokens] = {}
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[row["request_id"]] = ([int(x) for x in row["prompt_ids"]],
                                      [int(x) for x in row["output_ids"]])
        except (ValueError, KeyError, TypeError):
            raise SpecsimError(f"{path}:{i}: not a token record (request_id, prompt_ids, "
                               "output_ids)") from None
    return out


def lookup(ids: np.ndarray, n: int, tau: int) -> list[int]:
    """Prompt lookup: the tokens that followed the earliest occurrence of the context's longest
    suffix of at most ``n`` tokens that has a continuation (n, n-1, ..., 1), at most ``tau``."""
    size = len(ids)
    for k in range(min(n, size - 1), 0, -1):
        windows = np.lib.stride_tricks.sliding_window_view(ids[: size - 1], k)
        hits = np.flatnonzero((windows == ids[size - k:]).all(axis=1))
        if hits.size:
            j = int(hits[0]) + k
            return ids[j: j + tau].tolist()
    return []


def ngram_cycles(prompt: list[int], output: list[int], n: int, tau: int,
                 max_new: int | None = None) -> list[tuple[int, int, int, int]]:
    """(tau, accepted, emitted, context) of each cycle of a greedy ``fixed:tau`` run whose
    draft is ``ngram:n``: proposals looked up in the context (as long as the request's
    ``max_new`` tokens leave room for: the decoder's clip, which does not know where an EOS
    will end the output), accepted while they match the output, then the target's own token.
    (Past an output's EOS the target's choices are unknown: a proposal running past it counts
    as accepted up to the EOS only.)"""
    ids = np.asarray(prompt + output, dtype=np.int64)
    limit = len(output) if max_new is None else max(max_new, len(output))
    cycles = []
    done = 0
    while done < len(output):
        room = limit - done - 1
        proposal = lookup(ids[: len(prompt) + done], n, min(tau, room)) if room > 0 else []
        accepted = 0
        while (accepted < len(proposal) and done + accepted < len(output)
               and proposal[accepted] == output[done + accepted]):
            accepted += 1
        emitted = min(accepted + 1, len(output) - done)
        cycles.append((len(proposal), accepted, emitted, len(prompt) + done))
        done += emitted
    return cycles


def replay_ngram(trace: Trace, path: str, n: int) -> Trace:
    """Trace ``trace`` (read from ``path``) as if drafted by ``ngram:n`` (module docstring).
    Needs a greedy ``fixed`` run with its token file."""
    from sim.calibrate.costs import fit_latency, own_costs, trace_speeds
    from sim.calibrate.requests import request_order

    meta = trace.meta
    tau = (meta.policy_params or {}).get("tau")
    if meta.policy != "fixed" or not isinstance(tau, int) or (meta.temperature or 0) > 0:
        raise SpecsimError(f"{path}: an n-gram replay needs a greedy fixed-tau run")
    tokens = read_tokens(path)
    if not tokens:
        raise SpecsimError(f"{token_ids_path(path)}: no token ids (capture with --record-tokens)")
    limit = (meta.extra or {}).get("max_new_tokens")
    max_new = int(limit) if isinstance(limit, int | float) and not isinstance(limit, bool) \
        else None
    fitted = fit_latency(trace)
    costs = own_costs(fitted)
    order = trace.requests.iloc[request_order(trace)]
    tokens = _by_request(trace, path, tokens)
    speeds = dict(zip(order["request_id"], trace_speeds(trace, fitted), strict=True))
    rows: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    clock = 0.0
    records: list[dict[str, Any]] = order.to_dict("records")  # type: ignore[assignment]
    for req in records:
        rid = req["request_id"]
        prompt, output = tokens[rid]
        speed = float(speeds[rid])
        start = clock
        t = start + float(req["prefill_s"])
        first: float | None = None
        replayed = ngram_cycles(prompt, output, n, tau, max_new)
        for i, (k, acc, emitted, ctx) in enumerate(replayed):
            draft_s = k * costs.draft_step_s * speed
            verify_s = (costs.verify_s(k + 1) + costs.context_s_per_token * ctx) * speed
            rows.append({"request_id": rid, "cycle": i, "start_s": t, "tau": k,
                         "accepted": acc, "emitted": emitted, "draft_s": draft_s,
                         "verify_s": verify_s, "overhead_s": costs.overhead_s,
                         "context_tokens": ctx})
            t += draft_s + verify_s + costs.overhead_s
            first = t if first is None else first
        requests.append({**req, "arrival_s": start, "start_s": start,
                         "first_token_s": first if first is not None else t, "end_s": t,
                         "output_tokens": len(output), "verify_passes": len(replayed)})
        clock = t
    cycles = pd.DataFrame(rows)
    for col in trace.cycles.columns:
        if col not in cycles.columns:
            cycles[col] = np.nan if trace.cycles[col].dtype.kind == "f" else None
    new_meta = dataclasses.replace(meta, draft_model=f"ngram:n={n}")
    return Trace(new_meta, pd.DataFrame(requests)[list(trace.requests.columns)],
                 cycles[list(trace.cycles.columns)], path)


def _by_request(trace: Trace, path: str, tokens: dict[Any, Tokens]) -> dict[Any, Tokens]:
    """Each of ``trace``'s requests' token ids: by prompt text when the requests carry it (the
    original run's record of that prompt: renumbered ids still find theirs), else by id."""
    from tracing.io import read_trace

    r = trace.requests
    texts = r["prompt_text"].tolist() if "prompt_text" in r.columns else [None] * len(r)
    by_text: dict[str, Tokens] = {}
    if any(isinstance(t, str) for t in texts):
        source = read_trace(path).requests
        for rid, text in zip(source["request_id"], source["prompt_text"], strict=True):
            if rid in tokens and isinstance(text, str):
                by_text.setdefault(text, tokens[rid])
    out: dict[Any, Tokens] = {}
    for rid, text in zip(r["request_id"], texts, strict=True):
        got = by_text.get(text) if isinstance(text, str) else tokens.get(rid)
        if got is None:
            raise SpecsimError(f"{token_ids_path(path)}: no token ids for request {rid}")
        out[rid] = got
    return out
