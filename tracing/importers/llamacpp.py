"""llama.cpp server responses (``specsim import llamacpp``): a JSONL of ``/completion`` or
``/v1/chat/completions`` responses with ``timings`` (read as llama-server sends them: one
response per line or a JSON array, or a saved stream -- its ``data:`` lines; the chunks of one
stream share an id and only the last with ``timings`` is read, the final chunk, which carries the
request's totals)::

    {"id": "chatcmpl-x", "content": "...", "stop_type": "eos", "tokens_predicted": 64,
     "timings": {"prompt_n": 20, "prompt_ms": 300.1, "predicted_n": 64, "predicted_ms": 2296.7,
                 "draft_n": 90, "draft_n_accepted": 40}}

llama.cpp gives totals only. Its first output token comes from prefill; every later step emits
its accepted drafts plus one, so the request ran ``predicted_n - 1 - draft_n_accepted`` decode
steps. The number of steps that drafted is not reported: assumed all of them (so the mean
acceptance length is ``1 + draft_n_accepted / steps``, an assumption ``missing`` states), and the
drafted and accepted tokens are spread evenly over the steps. ``prompt_ms`` is the prefill,
``predicted_ms`` the decode time (``cycle_s`` spread evenly over it, estimated). Unknown fields
are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tracing.errors import TraceError
from tracing.importers.build import RequestFacts, build_request
from tracing.importers.common import Fields, json_objects
from tracing.importers.profile import AcceptanceProfile, ImportResult
from tracing.importers.spread import even_steps
from tracing.schema import MAX_DRAFT_TOKENS, CycleRecord, RequestRecord, RunMeta
from tracing.trace import Trace

_STOP = {"eos": "eos", "limit": "length", "word": "eos", "stop": "eos", "length": "length"}

Located = tuple[str, int, dict[str, Any]]  # (file, line, object)


def final_responses(paths: list[str], skipped: list[int] | None = None) -> Iterator[Located]:
    """Each response with ``timings``; of a stream's chunks (consecutive, one id), the last.
    ``skipped[0]`` counts the objects passed over (no ``timings``: other records)."""
    for path in paths:
        pending: Located | None = None
        for line, obj in json_objects(path):
            if not isinstance(obj.get("timings"), dict):
                if skipped is not None:
                    skipped[0] += 1
                continue  # a stream chunk without timings
            rid = obj.get("id")
            if pending is not None and rid is not None and pending[2].get("id") == rid:
                pending = (path, line, obj)  # a later chunk of the same stream
                continue
            if pending is not None:
                yield pending
            pending = (path, line, obj)
        if pending is not None:
            yield pending


def _stop(obj: dict[str, Any]) -> str | None:
    stop = obj.get("stop_type")
    choices = obj.get("choices")
    if not isinstance(stop, str) and isinstance(choices, list) and choices \
            and isinstance(choices[0], dict):
        stop = choices[0].get("finish_reason")
    return _STOP.get(stop) if isinstance(stop, str) else None


def import_llamacpp(paths: list[str]) -> ImportResult:
    """Read llama.cpp responses into a trace (module docstring)."""
    skipped = [0]
    result = import_responses(final_responses(paths, skipped), paths, "llamacpp")
    if skipped[0]:
        result.missing["skipped"] = (f"{skipped[0]} JSON objects without timings (stream "
                                     "chunks or other records) were not read")
    return result


def import_responses(responses: Iterable[Located], paths: list[str],
                     fmt: str) -> ImportResult:
    """The trace of llama.cpp responses (or of log entries shaped like them)."""
    requests: list[RequestRecord] = []
    cycles: list[CycleRecord] = []
    total = AcceptanceProfile()
    seen: dict[str, str] = {}
    no_draft = 0
    t = 0.0
    model = ""
    for path, line, obj in responses:
        f = Fields(path, line, obj)
        timings = f.sub("timings")
        assert timings is not None
        rid = f.text("id") if isinstance(obj.get("id"), str) else None
        rid = rid or f"{path}:{line}"
        f.claim_id(rid, seen)
        n_out = timings.required_tokens("predicted_n")
        drafted = timings.tokens("draft_n")
        accepted = timings.tokens("draft_n_accepted")
        if drafted is None or accepted is None:
            no_draft += 1
            drafted = accepted = 0
        if accepted > drafted:
            raise timings.error("draft_n_accepted", f"accepted {accepted} > drafted "
                                f"{drafted}")
        n_steps = n_out - 1 - accepted
        if n_out and n_steps < 0:
            raise timings.error("draft_n_accepted", f"{accepted} accepted drafts cannot fit "
                                f"in {n_out} predicted tokens")
        if n_steps > 0 and -(-drafted // n_steps) > MAX_DRAFT_TOKENS:
            raise timings.error("draft_n", f"{drafted} drafted over {n_steps} steps: more "
                                f"than {MAX_DRAFT_TOKENS:,} draft tokens in one step")
        steps = even_steps(n_steps, drafted, accepted)
        spec_steps = [s for s in steps if s[0] > 0]
        per_pos: list[float] = []
        total.add(AcceptanceProfile(float(len(spec_steps)), float(drafted), float(accepted),
                                    per_pos))
        prefill = (timings.number("prompt_ms") or 0.0) / 1e3
        decode = (timings.number("predicted_ms") or 0.0) / 1e3
        facts = RequestFacts(rid, timings.tokens("prompt_n") or 0, n_out, t, 0.0, prefill,
                             decode, steps, _stop(obj))
        requests.append(build_request(facts, cycles))
        t += prefill + decode
        if isinstance(obj.get("model"), str):
            model = obj["model"]
    if not requests:
        raise TraceError(paths[0], f"no llama.cpp {'log entries' if fmt != 'llamacpp' else 'responses'} with timings found")
    meta = RunMeta(source="llamacpp", target_model=model, draft_model="", policy="fixed",
                   extra={"engine": "llamacpp",
                          "imported": {"format": fmt, "files": list(paths),
                                       "cycle_order": "unknown", "first_token": "prefill"}})
    result = ImportResult(fmt, total, Trace.from_records(meta, requests, cycles))
    result.missing.update({
        "num_drafts": ("not reported: every decode step (predicted_n - 1 - draft_n_accepted) "
                       "assumed to have drafted"),
        "per_step": "totals only: drafted and accepted tokens spread evenly over the steps",
        "acceptance_by_position": "not in llama.cpp's timings",
        "arrival_s": "not in the response: requests laid end to end in file order",
        "cycle_s": "estimated: predicted_ms spread evenly over each request's steps",
        "batch_size": "not in llama.cpp's timings: unknown",
    })
    if no_draft:
        result.missing["draft_n"] = (f"{no_draft} of {len(requests)} responses have no draft "
                                     "counts: target-only")
    return result
