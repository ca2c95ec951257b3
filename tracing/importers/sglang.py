"""SGLang responses (``specsim import sglang``): a JSONL of responses whose ``meta_info`` (the
native ``/generate`` API, or ``choices[0].meta_info``) carries the spec-decode counts::

    {"text": "...", "meta_info": {"id": "5799660f79fd4dc481ac2226d5b97102",
        "prompt_tokens": 120, "completion_tokens": 8, "e2e_latency": 0.08,
        "finish_reason": {"type": "stop"},
        "spec_verify_ct": 7, "spec_accept_length": 1.14, "spec_accept_rate": 0.05,
        "spec_accept_token_num": 1, "spec_draft_token_num": 21,
        "spec_accept_histogram": [6, 1]}}

``spec_accept_histogram[n]`` counts verify steps that accepted exactly ``n`` draft tokens; each
step drafted ``spec_draft_token_num / spec_verify_ct`` tokens (the configured draft length), or
``len(histogram) - 1`` without it. The steps' order is not recorded, so a request's cycles are the
histogram's steps in a deterministic spread (a per-request acceptance profile, as ``missing``
says); without a histogram they are spread evenly over the totals. ``e2e_latency`` (seconds) is
the only timing: ``cycle_s`` is it over the steps (estimated; prefill taken as 0). Unknown fields
are ignored.
"""

from __future__ import annotations

from tracing.errors import TraceError
from tracing.importers.build import RequestFacts, build_request, profile_of_steps
from tracing.importers.common import Fields, json_objects
from tracing.importers.profile import AcceptanceProfile, ImportResult
from tracing.importers.spread import even_steps
from tracing.importers.vllm import _interleave
from tracing.schema import MAX_DRAFT_TOKENS, CycleRecord, RequestRecord, RunMeta
from tracing.trace import Trace

_FINISH = {"stop": "eos", "length": "length", "abort": "interrupted"}


def _meta_info(f: Fields) -> Fields | None:
    meta = f.sub("meta_info")
    if meta is not None:
        return meta
    choices = f.obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return Fields(f.path, f.line, choices[0], "choices[0].").sub("meta_info")
    return None


def _steps(meta: Fields) -> tuple[list[tuple[int, int]], AcceptanceProfile, bool]:
    verify = meta.tokens("spec_verify_ct")
    hist = meta.counts("spec_accept_histogram")
    draft_total = meta.count("spec_draft_token_num")
    acc_total = meta.count("spec_accept_token_num")
    if verify is None:
        raise meta.error("spec_verify_ct", "missing (a server without speculative decoding?)")
    if hist is not None:
        if sum(hist) != verify:
            raise meta.error("spec_accept_histogram", f"counts {sum(hist)} steps but "
                             f"spec_verify_ct is {verify}")
        if draft_total is not None and verify and draft_total % verify == 0:
            d = draft_total // verify
        else:
            d = len(hist) - 1
        if len(hist) - 1 > d:
            raise meta.error("spec_accept_histogram", f"a step accepted {len(hist) - 1} tokens "
                             f"but steps draft {d}")
        _check_draft_length(meta, d)
        steps = [(d, a) for a, n in enumerate(hist) for _ in range(n)]
        accepted = sum(a for _, a in steps)
        if acc_total is not None and acc_total != accepted:
            raise meta.error("spec_accept_token_num", f"{acc_total} but the histogram adds up "
                             f"to {accepted}")
        prof = profile_of_steps(steps, d)
        if draft_total is not None:
            prof.draft_tokens = float(draft_total)
        return _interleave(steps), prof, True
    if acc_total is None:
        raise meta.error("spec_accept_token_num", "missing, and no spec_accept_histogram")
    drafted = draft_total if draft_total is not None else acc_total
    if acc_total > drafted:
        raise meta.error("spec_accept_token_num", f"accepted {acc_total} > drafted {drafted}")
    if verify:
        _check_draft_length(meta, -(-drafted // verify))
    steps = even_steps(verify, drafted, acc_total)
    prof = AcceptanceProfile(float(verify), float(drafted), float(acc_total))
    return steps, prof, False


def _check_draft_length(meta: Fields, per_step: int) -> None:
    if per_step > MAX_DRAFT_TOKENS:
        raise meta.error("spec_draft_token_num", f"{per_step} draft tokens per verify step (more "
                         f"than {MAX_DRAFT_TOKENS:,})")


def import_sglang(paths: list[str]) -> ImportResult:
    """Read SGLang responses into a trace (module docstring)."""
    requests: list[RequestRecord] = []
    cycles: list[CycleRecord] = []
    total = AcceptanceProfile()
    seen: dict[str, str] = {}
    no_hist = no_draft_total = skipped = 0
    t = 0.0
    model = ""
    for path in paths:
        for line, obj in json_objects(path):
            f = Fields(path, line, obj)
            meta = _meta_info(f)
            if meta is None:
                skipped += 1  # a stream chunk or another object: no meta_info
                continue
            rid = meta.text("id") or (f.text("id") if isinstance(obj.get("id"), str) else None) \
                or f"{path}:{line}"
            meta.claim_id(rid, seen)
            n_out = meta.required_tokens("completion_tokens")
            verify_ct = meta.count("spec_verify_ct") or 0
            if verify_ct > max(n_out, 1):
                raise meta.error("spec_verify_ct", f"{verify_ct} verify steps cannot emit only "
                                 f"{n_out} tokens (each emits at least one)")
            steps, prof, had_hist = _steps(meta)
            no_hist += not had_hist
            no_draft_total += not meta.has("spec_draft_token_num")
            total.add(prof)
            e2e = meta.number("e2e_latency") or 0.0
            reason = obj.get("meta_info", {}).get("finish_reason") if isinstance(
                obj.get("meta_info"), dict) else None
            kind = reason.get("type") if isinstance(reason, dict) else None
            stop = _FINISH.get(kind) if isinstance(kind, str) else None
            facts = RequestFacts(rid, meta.tokens("prompt_tokens") or 0, n_out, t, 0.0, 0.0, e2e,
                                 steps, stop)
            requests.append(build_request(facts, cycles))
            t += e2e
            if isinstance(obj.get("model"), str):
                model = obj["model"]
    if not requests:
        raise TraceError(paths[0], "no SGLang responses with meta_info found")
    meta_run = RunMeta(source="sglang", target_model=model, draft_model="", policy="fixed",
                       policy_params={"tau": total.num_spec_tokens} if total.num_spec_tokens
                       else {}, extra={"imported": {"format": "sglang", "files": list(paths),
                                           "cycle_order": "unknown", "first_token": "prefill"}})
    result = ImportResult("sglang", total, Trace.from_records(meta_run, requests, cycles))
    result.missing.update({
        "arrival_s": "not in meta_info: requests laid end to end in file order",
        "time_to_first_token": "not in meta_info: prefill taken as 0 s; e2e_latency is all decode",
        "cycle_s": "estimated: e2e_latency spread evenly over each request's steps",
        "cycle_order": "SGLang records a histogram per request, not the order of its steps",
        "batch_size": "not in SGLang responses: unknown",
    })
    if skipped:
        result.missing["skipped"] = (f"{skipped} JSON objects without meta_info (stream chunks "
                                     "or other records) were not read")
    if no_hist:
        result.missing["spec_accept_histogram"] = (
            f"{no_hist} of {len(requests)} responses have none: their steps spread evenly over "
            "the totals, and per-position figures leave them out")
    if no_draft_total:
        result.missing["spec_draft_token_num"] = (
            f"{no_draft_total} of {len(requests)} responses lack it: steps drafted "
            "len(histogram) - 1 tokens")
    return result
