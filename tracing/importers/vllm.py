"""vLLM responses (``specsim import vllm``): a JSONL of OpenAI-API responses from a vLLM server.

Each line is a non-streamed response object, or the final usage chunk of a stream (other stream
chunks carry no ``usage`` and are skipped); a JSON array of them, or saved ``data: {...}`` SSE
lines, read too. The fields read (vLLM docs/features/per_request_metrics.md and
docs/features/speculative_decoding/acceptance_metrics.md)::

    {"id": "chatcmpl-abc", "created": 1733000000,
     "usage": {"prompt_tokens": 42, "completion_tokens": 128},
     "choices": [{"finish_reason": "stop", ...}],
     "metrics": {"time_to_first_token_ms": 85.2, "generation_time_ms": 1240.5,
                 "queue_time_ms": 12.3, "mean_itl_ms": 9.1,
                 "speculative_decoding": {          # --per-request-spec-decode-metrics summary
                     "num_spec_steps": 43, "num_draft_tokens": 129,
                     "num_accepted_draft_tokens": 10, "num_spec_tokens": 3,
                     "acceptance_histogram": [39, 1, 0, 3],
                     "acceptance_histogram_by_draft_length": {"3": [39, 1, 0, 3]},
                     "per_step_accepted": [...], "per_step_drafted": [...]}}}  # detailed

``detailed`` gives one cycle per verify step in order, ``cycle_s`` spread evenly over
``generation_time_ms`` (estimated). ``summary`` has histograms only: each request's steps are
laid out from ``acceptance_histogram_by_draft_length`` (or ``acceptance_histogram`` with
``num_spec_tokens``) -- the exact multiset of (drafted, accepted) steps, in an order vLLM does not
record -- so the trace is a per-request acceptance profile, and ``missing`` says so. Arrivals come
from ``created`` (unix seconds, 1 s resolution) relative to the earliest; without it requests are
laid end to end. Unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any

from tracing.errors import TraceError
from tracing.importers.build import RequestFacts, build_request, profile_of_steps
from tracing.importers.common import MAX_TOKENS, Fields, json_objects
from tracing.importers.profile import AcceptanceProfile, ImportResult
from tracing.schema import MAX_DRAFT_TOKENS, CycleRecord, RequestRecord, RunMeta
from tracing.trace import Trace

_FINISH = {"stop": "eos", "length": "length", "abort": "interrupted", "error": "error"}


def _steps_from_histograms(spec: Fields) -> tuple[list[tuple[int, int]], int | None] | None:
    by_len = spec.sub("acceptance_histogram_by_draft_length")
    k = spec.draft_length("num_spec_tokens")
    steps: list[tuple[int, int]] = []
    if by_len is not None:
        for key in sorted(by_len.obj, key=lambda s: (len(s), s)):
            try:
                d = int(key)
            except ValueError:
                raise by_len.error(key, "draft-length keys must be integers") from None
            if not 0 <= d <= MAX_DRAFT_TOKENS:
                raise by_len.error(key, f"draft length {d} outside 0..{MAX_DRAFT_TOKENS:,}")
            hist: list[int] = by_len.counts(key) or []
            if sum(hist) + len(steps) > MAX_TOKENS:
                raise by_len.error(key, f"more than {MAX_TOKENS:,} steps in one response")
            if len(hist) > d + 1:
                raise by_len.error(key, f"{len(hist)} buckets for draft length {d} (at most "
                                   f"{d + 1}: accepted 0..{d})")
            steps.extend((d, a) for a, n in enumerate(hist) for _ in range(n))
        return _interleave(steps), k
    flat = spec.counts("acceptance_histogram")
    if flat is None:
        return None
    hist = flat
    if sum(hist) > MAX_TOKENS:
        raise spec.error("acceptance_histogram", f"more than {MAX_TOKENS:,} steps in one response")
    d = k if k is not None else len(hist) - 1
    if d > MAX_DRAFT_TOKENS:
        raise spec.error("acceptance_histogram", f"{len(hist)} buckets: more than "
                         f"{MAX_DRAFT_TOKENS:,} draft tokens in one step")
    if len(hist) > d + 1:
        raise spec.error("acceptance_histogram", f"{len(hist)} buckets for num_spec_tokens {d}")
    return _interleave([(d, a) for a, n in enumerate(hist) for _ in range(n)]), k


def _interleave(steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A deterministic spread of a histogram's steps (the order is unknown): stride through the
    sorted list so no run of equal outcomes is artificially long."""
    n = len(steps)
    if n < 3:
        return steps
    stride = next(s for s in range(max(2, int(n**0.5)), n + 1) if _coprime(s, n))
    return [steps[(i * stride) % n] for i in range(n)]


def _coprime(a: int, b: int) -> bool:
    while b:
        a, b = b, a % b
    return a == 1


def _spec_steps(spec: Fields) -> tuple[list[tuple[int, int]], str, int | None]:
    acc = spec.counts("per_step_accepted")
    drafted = spec.draft_lengths("per_step_drafted")
    k = spec.draft_length("num_spec_tokens")
    if acc is not None or drafted is not None:
        if acc is None or drafted is None:
            missing = "per_step_drafted" if drafted is None else "per_step_accepted"
            raise spec.error(missing, "detailed metrics need both per_step_accepted and "
                             "per_step_drafted")
        if len(acc) != len(drafted):
            raise spec.error("per_step_accepted", f"{len(acc)} steps but per_step_drafted has "
                             f"{len(drafted)}")
        for i, (a, d) in enumerate(zip(acc, drafted, strict=True)):
            if a > d:
                raise spec.error(f"per_step_accepted[{i}]", f"accepted {a} > drafted {d}")
        return list(zip(drafted, acc, strict=True)), "detailed", k
    from_hist = _steps_from_histograms(spec)
    if from_hist is None:
        raise spec.error("acceptance_histogram", "no per-step arrays and no histogram")
    steps, k = from_hist
    return steps, "summary", k


def _check_totals(spec: Fields, steps: list[tuple[int, int]]) -> None:
    """The engine's own totals, when given, must match its steps."""
    prof = profile_of_steps(steps)
    for name, value in (("num_spec_steps", prof.drafts), ("num_draft_tokens", prof.draft_tokens),
                        ("num_accepted_draft_tokens", prof.accepted_tokens)):
        given = spec.count(name)
        if given is not None and given != value and not (name == "num_spec_steps"
                                                         and given == len(steps)):
            raise spec.error(name, f"{given} but the steps add up to {value:g}")
    if prof.accepted_tokens > prof.draft_tokens:
        raise spec.error("num_accepted_draft_tokens", "accepted > drafted")


def import_vllm(paths: list[str]) -> ImportResult:
    """Read vLLM response files into a trace (see the module docstring)."""
    facts: list[RequestFacts] = []
    created: list[float | None] = []
    levels: set[str] = set()
    k_seen: int | None = None
    seen: dict[Any, str] = {}
    for path in paths:
        for line, obj in json_objects(path):
            f = Fields(path, line, obj)
            usage = f.sub("usage")
            if usage is None:
                continue  # a content chunk of a stream: the final usage chunk carries the rest
            rid_raw = obj.get("id")
            if rid_raw is None:
                rid: str | int = f"{path}:{line}"
            elif isinstance(rid_raw, str | int) and not isinstance(rid_raw, bool):
                rid = rid_raw if isinstance(rid_raw, str) else str(rid_raw)
            else:
                raise f.error("id", f"expected a string, got {type(rid_raw).__name__}")
            f.claim_id(rid, seen)
            n_out = usage.required_tokens("completion_tokens")
            fact = RequestFacts(rid, usage.tokens("prompt_tokens") or 0, n_out, 0.0)
            if not usage.has("prompt_tokens"):
                fact.flags.add("prompt_tokens")
            choices = obj.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                reason = choices[0].get("finish_reason")
                fact.stop_reason = _FINISH.get(reason) if isinstance(reason, str) else None
            metrics = f.sub("metrics")
            if metrics is not None:
                fact.queue_s = _ms(metrics, "queue_time_ms")
                fact.ttft_s = _ms(metrics, "time_to_first_token_ms")
                fact.decode_s = _ms(metrics, "generation_time_ms")
                spec = metrics.sub("speculative_decoding")
                if spec is not None:
                    steps, level, k = _spec_steps(spec)
                    _check_totals(spec, steps)
                    fact.steps = steps
                    levels.add(level)
                    k_seen = k if k is not None else k_seen
            for name in ("queue", "ttft", "decode"):
                if getattr(fact, {"queue": "queue_s", "ttft": "ttft_s",
                                  "decode": "decode_s"}[name]) is None:
                    fact.flags.add(name)
            if fact.steps is None:
                fact.flags.add("spec")
            c = obj.get("created")
            created.append(float(c) if isinstance(c, int | float) and not isinstance(c, bool)
                           else None)
            facts.append(fact)
    if not facts:
        raise TraceError(paths[0], "no vLLM responses with usage found (one JSON object per line: "
                         "a response, or a stream's final usage chunk)")
    _arrivals(facts, created)
    requests: list[RequestRecord] = []
    cycles: list[CycleRecord] = []
    profile = AcceptanceProfile(num_spec_tokens=k_seen)
    for fact in facts:
        requests.append(build_request(fact, cycles))
        if fact.steps:
            profile.add(profile_of_steps(fact.steps, k_seen))
    meta = RunMeta(source="vllm", target_model="", draft_model="", policy="fixed",
                   policy_params={"tau": k_seen} if k_seen else {},
                   extra={"imported": {"format": "vllm", "files": list(paths),
                                       "spec_decode_metrics": sorted(levels),
                                       "cycle_order": "unknown" if "summary" in levels
                                       else "recorded", "first_token": "prefill"}})
    _model(meta, paths)
    result = ImportResult("vllm", profile, Trace.from_records(meta, requests, cycles))
    result.missing.update(_missing(facts, created, levels))
    return result


def _ms(f: Fields, name: str) -> float | None:
    v = f.number(name)
    return None if v is None else v / 1e3


def _arrivals(facts: list[RequestFacts], created: list[float | None]) -> None:
    known = [c for c in created if c is not None]
    if len(known) == len(created):
        t0 = min(known)
        for fact, c in zip(facts, known, strict=True):
            fact.arrival_s = c - t0
        return
    t = 0.0
    for fact in facts:  # end to end, in file order
        fact.arrival_s = t
        t += (fact.queue_s or 0.0) + (fact.ttft_s or 0.0) + (fact.decode_s or 0.0)


def _model(meta: RunMeta, paths: list[str]) -> None:
    for path in paths:
        for _, obj in json_objects(path):
            if isinstance(obj.get("model"), str):
                meta.target_model = obj["model"]
                return


def _missing(facts: list[RequestFacts], created: list[float | None],
             levels: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    n = len(facts)

    def count(flag: str) -> int:
        return sum(flag in f.flags for f in facts)

    if any(c is None for c in created):
        out["arrival_s"] = "no 'created' on every response: requests laid end to end in file order"
    else:
        out["arrival_s"] = "from 'created' (unix seconds): 1 s resolution"
    for flag, what in (("queue", "queue_time_ms: taken as 0"),
                       ("ttft", "time_to_first_token_ms: prefill taken as 0 s"),
                       ("decode", "generation_time_ms: decode time taken as 0 s"),
                       ("prompt_tokens", "usage.prompt_tokens: taken as 0")):
        if (m := count(flag)):
            out[flag if flag == "prompt_tokens" else f"metrics.{what.split(':')[0]}"] = (
                f"{m} of {n} responses lack {what}")
    if (m := count("spec")):
        out["metrics.speculative_decoding"] = (
            f"{m} of {n} responses have none (server without --per-request-spec-decode-metrics, "
            "or n > 1): their tokens are target-only steps")
    if "summary" in levels:
        out["cycle_order"] = ("summary metrics give histograms only: each request's steps are "
                              "the histogram's (drafted, accepted) counts in an order vLLM does "
                              "not record -- a per-request acceptance profile")
    out["cycle_s"] = ("estimated: generation_time_ms spread evenly over each request's decode "
                      "steps; no draft/verify split")
    out["batch_size"] = "not in vLLM responses: unknown"
    out["first_token"] = "from prefill: cycle 0 is a target-only step of 0 s carrying it"
    return out
