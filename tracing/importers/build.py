"""Turning per-request facts from an engine into schema-v2 records.

An engine's first output token comes from prefill; in specsim's convention every token is emitted
by a cycle, so an imported request starts with cycle 0: a target-only step (``tau = 0``) that
emits the prefill's token at ``first_token_s`` with ``cycle_s = 0`` (its time is in
``prefill_s``). Decode steps follow, their ``cycle_s`` spread evenly over the decode time when the
engine gives only the total (marked estimated in ``missing``). Tokens the steps do not account for
(vLLM leaves steps without drafts out of its per-step arrays) become target-only steps at the end;
steps that emitted fewer than accepted + 1 (a stop mid-draft) are trimmed from the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracing.importers.profile import AcceptanceProfile
from tracing.schema import CycleRecord, RequestRecord


@dataclass
class RequestFacts:
    """What an engine says about one finished request (None where it does not say)."""

    request_id: str | int
    prompt_tokens: int
    output_tokens: int
    arrival_s: float
    queue_s: float | None = None
    ttft_s: float | None = None  # scheduled -> first token (vLLM) / prefill time
    decode_s: float | None = None  # first token -> last token
    steps: list[tuple[int, int]] | None = None  # (drafted, accepted) per verify step, in order
    stop_reason: str | None = None
    prompt_text: str | None = None
    output_text: str | None = None
    flags: set[str] = field(default_factory=set)  # what was filled: "queue", "ttft", "decode", ...


def profile_of_steps(steps: list[tuple[int, int]], k: int | None = None) -> AcceptanceProfile:
    """The acceptance counters of a list of (drafted, accepted) steps."""
    width = max([d for d, _ in steps] + [k or 0])
    per_pos = [0.0] * width
    drafts = tokens = acc = 0
    for d, a in steps:
        if d <= 0:
            continue
        drafts += 1
        tokens += d
        acc += a
        for i in range(a):
            per_pos[i] += 1
    return AcceptanceProfile(drafts, tokens, acc, per_pos, k)


def build_request(
    facts: RequestFacts, cycles_out: list[CycleRecord]
) -> RequestRecord:
    """The request's record; its cycles are appended to ``cycles_out``."""
    queue = facts.queue_s if facts.queue_s is not None else 0.0
    ttft = facts.ttft_s if facts.ttft_s is not None else 0.0
    decode = facts.decode_s if facts.decode_s is not None else 0.0
    start = facts.arrival_s + queue
    first = start + ttft
    n_out = facts.output_tokens
    # 1. (drafted, accepted, emitted) per decode step
    plan: list[list[int]] = [[d, a, a + 1] for d, a in (facts.steps or [])]
    rest = n_out - 1 - sum(p[2] for p in plan) if n_out > 0 else 0
    if rest > 0:  # tokens of steps the engine did not list: target-only steps
        plan.extend([0, 0, 1] for _ in range(rest))
    i = len(plan) - 1
    while rest < 0 and i >= 0:  # a stop cut the last steps short
        cut = min(plan[i][2], -rest)
        plan[i][2] -= cut
        rest += cut
        i -= 1
    n_steps = len(plan)
    step_s = decode / n_steps if n_steps else 0.0
    rid = facts.request_id
    c0 = len(cycles_out)
    if n_out > 0:
        cycles_out.append(CycleRecord(rid, 0, first, 0, 0, 1, None, None, None,
                                      facts.prompt_tokens, cycle_s=0.0))
    ctx = facts.prompt_tokens + 1
    t = first
    for j, (d, a, e) in enumerate(plan, start=1):
        cycles_out.append(CycleRecord(rid, j, t, d, min(a, d), e, None, None, None, ctx,
                                      cycle_s=step_s))
        ctx += e
        t += step_s
    return RequestRecord(
        request_id=rid, arrival_s=facts.arrival_s, start_s=start, first_token_s=first,
        end_s=first + decode, prompt_tokens=facts.prompt_tokens, output_tokens=n_out,
        prefill_s=ttft, verify_passes=len(cycles_out) - c0 - (1 if n_out > 0 else 0),
        prompt_text=facts.prompt_text, output_text=facts.output_text,
        stop_reason=facts.stop_reason,
    )
