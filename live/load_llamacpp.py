"""What ``specsim load`` does differently against llama.cpp's ``llama-server``.

How llama.cpp streams (read from its server, and seen on the wire): one SSE chunk per token,
even when a speculative step accepted several tokens at once -- the tokens of one step leave
together, microseconds apart. Asked with ``timings_per_token: true`` (a llama.cpp request field)
every chunk carries the request's running ``timings``: ``predicted_n`` (tokens so far),
``predicted_ms`` (decode time so far, measured by the server), ``draft_n`` and
``draft_n_accepted`` (drafted and accepted so far; absent while 0). ``draft_n`` grows when a step
drafts, before it is verified, and ``draft_n_accepted`` when it is verified, before its tokens
are sent, so every token of one step carries the same pair. Engine steps are rebuilt from that
(:func:`steps_of`): a change of ``draft_n`` opens a drafting step of ``tau = Δdraft_n`` tokens
that accepted ``Δdraft_n_accepted`` and emits ``accepted + 1`` tokens (fewer at a stop); any
further token with an unchanged pair is a target-only step of one token. The first token comes
from prefill (cycle 0, ``cycle_s = 0``: its time is in ``prefill_s``), as for the importers.
A step's time is the growth of ``predicted_ms`` across it (the server's clock, measured).

Measured (per request): drafted / accepted tokens, tokens per step, step times, prefill; run-wide,
with ``--metrics-url``: the engine's ``llamacpp:spec_decode_*`` counters differenced around the
run. Inferred: the step boundaries (from the pairs, exact unless two steps in a row drafted and
accepted nothing... which changes ``draft_n`` and so is still seen) and the batch size of a step
(not sent: left unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracing.errors import SpecsimError


def is_llamacpp(models: Any) -> bool:
    """True when a ``/v1/models`` reply comes from llama.cpp (``owned_by: llamacpp``)."""
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return False
    return data[0].get("owned_by") == "llamacpp"


def request_fields() -> dict[str, Any]:
    """Fields added to each request body sent to llama.cpp."""
    return {"timings_per_token": True}


@dataclass
class Step:
    """One engine step as rebuilt from the chunks: its tokens' arrival (the last one's), the
    tokens it emitted, the drafted/accepted counts and the server's decode time of the step."""

    arrival_s: float
    emitted: int
    drafted: int
    accepted: int
    server_ms: float


def _int(timings: dict[str, Any], key: str) -> int:
    value = timings.get(key, 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def steps_of(chunks: list[tuple[float, dict[str, Any]]]) -> list[Step]:
    """Engine steps from the (arrival, timings) of each chunk of one request (module docstring)."""
    steps: list[Step] = []
    n = d = a = 0
    ms = 0.0
    owed = 0  # tokens the open drafting step has still to emit
    for t, tm in chunks:
        pred = _int(tm, "predicted_n")
        if pred <= n:
            continue  # no new token (the final chunk repeats the totals)
        dn, an = _int(tm, "draft_n"), _int(tm, "draft_n_accepted")
        now_ms = float(tm.get("predicted_ms") or 0.0)
        for _ in range(pred - n):  # one chunk should bring one token; more are taken in order
            if not steps:
                steps.append(Step(t, 1, 0, 0, 0.0))  # the prefill's token
            elif dn != d:
                steps.append(Step(t, 1, dn - d, an - a, max(0.0, now_ms - ms)))
                owed = an - a
                d, a = dn, an
            elif owed > 0:
                steps[-1].emitted += 1
                steps[-1].arrival_s = t
                owed -= 1
            else:
                steps.append(Step(t, 1, 0, 0, max(0.0, now_ms - ms)))
            ms = now_ms
        n = pred
    return steps


def regroup(rec: Any) -> bool:
    """Turn a llama.cpp record's per-token chunks into one chunk per engine step, with the
    server's per-step arrays in ``rec.metrics['steps']`` (what :mod:`live.load_trace` reads).
    False (the record untouched) when its chunks carried no timings."""
    timed = getattr(rec, "chunk_timings", None)
    if not timed:
        return False
    steps = steps_of(timed)
    if not steps:
        return False
    rec.chunks = [(s.arrival_s, s.emitted) for s in steps]
    final = timed[-1][1]
    rec.metrics = {**(rec.metrics or {}), "timings": final, "steps": {
        "drafted": [s.drafted for s in steps], "accepted": [s.accepted for s in steps],
        "cycle_ms": [s.server_ms for s in steps]}}
    return True


def request_counts(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Each request's final ``timings`` (drafted, accepted, predicted, prompt), by request id."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        tm = (rec.metrics or {}).get("timings")
        if isinstance(tm, dict):
            out[str(rec.request_id or f"client-{rec.index}")] = {
                k: tm.get(k) for k in ("draft_n", "draft_n_accepted", "predicted_n",
                                       "predicted_ms", "prompt_n", "prompt_ms")}
    return out


def scrape(url: str) -> str:
    """One Prometheus scrape (text); a SpecsimError naming the URL when it cannot be read."""
    import httpx

    try:
        resp = httpx.get(url, timeout=10.0)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise SpecsimError(f"--metrics-url {url}: cannot scrape ({exc}); is the engine "
                           "started with --metrics?") from None
    return resp.text


def counters_between(before: str, after: str) -> dict[str, Any]:
    """The run's spec-decode counters: ``after - before`` of two scrapes' texts."""
    from tracing.importers.prometheus import profile_between

    prof = profile_between(before, after, "--metrics-url scrape")
    rate = prof.accepted_tokens / prof.draft_tokens if prof.draft_tokens else None
    by_pos = [a / prof.drafts for a in prof.accepted_per_pos] if prof.drafts else []
    return {"num_drafts": prof.drafts, "num_draft_tokens": prof.draft_tokens,
            "num_accepted_tokens": prof.accepted_tokens,
            "num_accepted_tokens_per_pos": prof.accepted_per_pos,
            "draft_acceptance_rate": rate, "acceptance_by_position": by_pos}


MISSING = {
    "step boundaries": "inferred: llama.cpp streams one chunk per token; steps rebuilt from the "
                       "running draft_n / draft_n_accepted each chunk carries (timings_per_token)",
    "batch_size": "not sent by llama.cpp: unknown",
    "draft/verify split": "not sent: each step's server time (growth of predicted_ms) only",
}


def server_props(endpoint: str) -> dict[str, Any]:
    """llama.cpp's ``GET /props`` (its slots and default settings); {} when it cannot be read."""
    import httpx

    base = endpoint.rstrip("/").removesuffix("/v1")
    try:
        resp = httpx.get(f"{base}/props", timeout=10.0)
        props = resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        props = {}
    return props if isinstance(props, dict) else {}


def annotate(trace: Any, records: list[Any], config: Any, before: str | None,
             after: str | None, engine_seen: bool) -> None:
    """Record in the trace's run line what llama.cpp said: each request's final ``timings``
    (``extra.engine_requests``), the run's counters (``extra.engine_counters``, with
    ``--metrics-url``), the server's slots and draft settings (``/props``), and what was measured
    and what inferred (``extra.missing``)."""
    extra = trace.meta.extra
    missing: dict[str, str] = {}
    if engine_seen:
        extra["engine"] = "llamacpp"
        extra["engine_requests"] = request_counts(records)
        missing.update(MISSING)
        props = server_props(config.endpoint)
        slots = props.get("total_slots")
        params = props.get("default_generation_settings", {}).get("params", {}) \
            if isinstance(props.get("default_generation_settings"), dict) else {}
        spec = {k: v for k, v in params.items() if isinstance(k, str) and k.startswith("spec")}
        extra["engine_config"] = {"total_slots": slots, **spec}
        trace.meta.draft_model = "ngram"
        if isinstance(slots, int):
            extra["max_batch"] = slots
    if after is not None and before is not None:
        extra["engine_counters"] = counters_between(before, after)
        extra["engine_counters"]["basis"] = ("measured: the engine's Prometheus counters, "
                                             "scraped before and after the run")
        n_max = len(extra["engine_counters"]["num_accepted_tokens_per_pos"])
        if n_max:  # the engine keeps one per-position counter per draftable position
            trace.meta.policy, trace.meta.policy_params = "fixed", {"tau": n_max}
    else:
        missing["engine_counters"] = "no --metrics-url: the engine's run-wide counters not read"
    extra["missing"] = missing
