"""The client trace of a load run (``source: "client"``): cycles rebuilt from streamed chunks.

One chunk per engine step (what ``specsim serve`` sends, and vLLM with speculative decoding):
a chunk that brought ``e`` tokens is a cycle with ``emitted = e`` and ``accepted = e - 1``; its
``cycle_s`` is the gap since the previous chunk (the step time, as the client sees it). What a
chunk cannot say comes from the server when it sends it, matched step for step: specsim's
``metrics.steps`` (drafted, accepted, batch size and the server-measured step time, every step)
or vLLM's ``metrics.speculative_decoding.per_step_drafted/accepted`` when their length is the
number of chunks. Without either, ``tau`` is the lower bound ``accepted`` (run metadata
``extra.tau_basis`` says which; each request's ``metrics.speculative_decoding`` summary, when the
server sends one, is kept under ``extra.server_speculative_decoding`` by request id); batch sizes are kept only when the server sent them for every
request (the schema takes them on every cycle or none; ``extra.batch_size_basis``). The split of a cycle into draft/verify/overhead is unknown to a
client and left null (schema v2). Time runs from the first request sent; ``start_s`` of a
request is its send time plus the server's ``queue_time_ms`` when given; cycle 0 starts at the
first token's arrival minus its server step time when known, else at ``start_s`` (its
``cycle_s`` then includes the prefill and the network).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracing.schema import CycleRecord, RequestRecord, RunMeta
from tracing.trace import Trace

if TYPE_CHECKING:  # for the annotations only: live.load imports this module to write the trace
    from live.load import ClientRecord, LoadConfig

_STOP = {"stop": "eos", "length": "length", "abort": "interrupted"}


def _server_steps(rec: ClientRecord, n: int) -> tuple[dict[str, list[Any]] | None, str]:
    """The server's per-step arrays matching ``n`` chunks, and where they came from."""
    metrics = rec.metrics or {}
    steps = metrics.get("steps")
    if isinstance(steps, dict) and len(steps.get("drafted") or []) == n:
        return steps, "server steps"
    spec = metrics.get("speculative_decoding")
    if isinstance(spec, dict) and len(spec.get("per_step_drafted") or []) == n:
        return {"drafted": spec["per_step_drafted"], "accepted": spec["per_step_accepted"]}, \
            "server per_step arrays"
    return None, "lower bound (accepted)"


def _request(rec: ClientRecord, rid: Any, cycles: list[Any], prompt_tokens: int,
             start_s: float, prefill_s: float) -> RequestRecord:
    end = rec.end_s if rec.end_s is not None else start_s
    first = rec.first_token_s if rec.first_token_s is not None else end
    reason = ("interrupted" if rec.interrupted else "error" if rec.error is not None
              else _STOP.get(rec.finish_reason or "", "eos"))
    values: dict[str, Any] = dict(
        request_id=rid, arrival_s=rec.send_s, start_s=start_s,
        first_token_s=min(max(first, start_s), max(end, start_s)), end_s=max(end, start_s),
        prompt_tokens=prompt_tokens, output_tokens=sum(c.emitted for c in cycles),
        prefill_s=prefill_s, verify_passes=len(cycles), prompt_text=rec.prompt,
        output_text=rec.text or None, stop_reason=reason)
    return RequestRecord(**values)


def client_trace(records: list[ClientRecord], config: LoadConfig, model: str) -> Trace:
    """The trace of a load run."""
    requests, cycles = [], []
    bases: dict[str, int] = {}
    spec: dict[str, Any] = {}  # the server's per-request summaries, by request id
    used: set[Any] = set()
    for rec in records:
        rid = rec.request_id or f"client-{rec.index}"
        if rid in used:  # two replies with one id: each request keeps its own line
            rid = f"{rid}#{rec.index}"
        used.add(rid)
        n = len(rec.chunks)
        steps, basis = _server_steps(rec, n)
        summary = (rec.metrics or {}).get("speculative_decoding")
        if isinstance(summary, dict):
            spec[str(rid)] = {k: v for k, v in summary.items() if not k.startswith("per_step")}
        if n:
            bases[basis] = bases.get(basis, 0) + 1
        prompt_tokens = int((rec.usage or {}).get("prompt_tokens") or 0)
        queue_ms = (rec.metrics or {}).get("queue_time_ms")
        start = rec.send_s + (float(queue_ms) / 1000.0 if queue_ms is not None else 0.0)
        if rec.first_token_s is not None:
            start = min(start, rec.first_token_s)
        cycle_ms = (steps or {}).get("cycle_ms")
        prev = start
        if n and cycle_ms:
            prev = max(start, rec.chunks[0][0] - float(cycle_ms[0]) / 1000.0)
        prefill = prev - start
        context = prompt_tokens
        mine = []
        for k, (t, emitted) in enumerate(rec.chunks):
            accepted = emitted - 1
            tau = accepted
            batch = None
            if steps is not None:
                accepted = min(int(steps["accepted"][k]), int(steps["drafted"][k]))
                tau = int(steps["drafted"][k])
                if steps.get("batch_size"):
                    batch = int(steps["batch_size"][k])
                emitted = min(emitted, accepted + 1)
            mine.append(CycleRecord(
                request_id=rid, cycle=k, start_s=prev, tau=max(tau, accepted), accepted=accepted,
                emitted=emitted, draft_s=None, verify_s=None, overhead_s=None,
                context_tokens=context,
                batch_size=batch, cycle_s=t - prev))
            context += emitted
            prev = t
        cycles.extend(mine)
        requests.append(_request(rec, rid, mine, prompt_tokens, start, prefill))
    known = [c.batch_size is not None for c in cycles]
    if any(known) and not all(known):  # the schema takes batch sizes on every cycle or none
        for c in cycles:
            c.batch_size = None
    extra: dict[str, Any] = {
        "endpoint": config.endpoint, "prompts": config.prompts, "api": config.api,
        "workload": config.prompts.removeprefix("builtin:"),
        "load": {"rate": config.rate, "concurrency": config.concurrency,
                 "arrivals": config.arrivals, "requests": config.requests,
                 "max_tokens": config.max_tokens, "rate_scale": config.rate_scale},
        "tau_basis": bases, "errors": sum(r.error is not None for r in records),
        "batch_size_basis": ("server steps" if all(known) and known else
                             "unknown (not sent for every request)"),
        "server_speculative_decoding": spec}
    meta = RunMeta(source="client", target_model=model,
                   draft_model="unknown", device="remote", temperature=config.temperature,
                   top_p=config.top_p, seed=config.seed, policy="unknown", extra=extra)
    return Trace.from_records(meta, requests, cycles)
