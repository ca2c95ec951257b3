"""Speculative decoding of one request: draft, verify in one target pass, accept, roll back.

Trace convention (the one the simulator uses too): prefill runs the target over the prompt
*minus its last token* and emits nothing; every token is emitted by a cycle, each cycle is one
target forward over ``1 + tau`` new positions (the last context token plus the drafted ones),
so ``sum(emitted) == output_tokens``, ``verify_passes == cycles`` and the first token appears at
the end of cycle 0. Computation is the same as "prefill emits the first token": the last prompt
token simply travels with cycle 0's verify pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from live.device import synchronizer
from live.drafts import Draft, uses_confidence
from live.kvcache import CachedLM, KVModel
from live.sampling import (
    SamplingConfig,
    accept_greedy,
    accept_sampling,
    make_generator,
    match_vocab,
    probs_from_logits,
    request_seed,
)
from sim.policies.library import Policy, PolicyState, useful_tau
from tracing.schema import CycleRecord


class TargetModel(Protocol):
    """What decoding needs of a target: ``live.models.LoadedModel`` or any stand-in."""

    model: Any  # a transformers causal LM
    device: str


_T0 = time.perf_counter()
_NO_TOKENS = torch.zeros(0, dtype=torch.long)


def seconds_since_start() -> float:
    """Default clock: monotonic seconds since this module was imported."""
    return time.perf_counter() - _T0


@dataclass(slots=True)
class DecodeResult:
    """One request's output tokens (prompt excluded), its cycles and its timings (clock units).

    ``stopped`` is ``"eos"``, ``"length"`` (max_new_tokens) or ``"budget"`` (the policy's verify
    budget ran out). ``first_token_s`` is the clock at the end of cycle 0 (the prefill end when
    no token was generated).
    """

    tokens: list[int]
    cycles: list[CycleRecord]
    prefill_s: float
    first_token_s: float
    verify_passes: int
    stopped: str
    start_s: float = 0.0  # clock when prefill began
    end_s: float = 0.0  # clock when the last cycle ended


def speculative_generate(
    target: TargetModel,
    draft: Draft | None,
    policy: Policy,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    eos_token_ids: set[int] | None = None,
    request_id: int = 0,
    clock: Callable[[], float] = seconds_since_start,
    on_cycle: Callable[[CycleRecord], None] | None = None,
    target_lm: KVModel | None = None,
) -> DecodeResult:
    """Generate up to ``max_new_tokens`` after ``input_ids`` (1, n), speculatively.

    Greedy output is token-identical to target-only greedy decoding; sampled output has exactly
    the target's distribution (see :func:`live.sampling.accept_sampling`). ``target`` needs only
    ``.model`` (a transformers causal LM) and ``.device``. ``on_cycle`` gets each cycle's record
    as soon as it is complete (streaming capture). ``target_lm``: the target with its KV cache
    to decode with (reset here; e.g. a :class:`live.static.StaticLM` whose compiled steps are
    reused across requests); default a fresh :class:`live.kvcache.CachedLM`.
    """
    device = target.device
    sync = synchronizer(device)  # waits for *this* device (cuda:N, xpu:N, mps)
    eos = eos_token_ids or set()
    # this request's own random stream: derived from the run's seed and the request id
    seed = None if sampling.seed is None else request_seed(sampling.seed, request_id)
    gen = make_generator(seed, device)
    record_probs = not sampling.greedy or uses_confidence(policy)
    vocab = int(target.model.config.vocab_size)
    prompt = [int(t) for t in input_ids[0].tolist()]
    if not prompt:
        raise ValueError("speculative_generate: empty prompt")
    tgt: KVModel = CachedLM(target.model) if target_lm is None else target_lm
    tgt.reset()
    out: list[int] = []
    cycles: list[CycleRecord] = []
    stopped = "length"
    policy.reset(request_id)
    limit_vocab = getattr(draft, "limit_vocab", None)
    if callable(limit_vocab):
        limit_vocab(vocab)  # a larger-vocabulary draft proposes only the target's tokens

    with torch.inference_mode():
        # Prefill: target (and draft) over the prompt minus its last token; no logits needed.
        start_s = clock()
        input_ids = input_ids.to(device)
        if len(prompt) > 1:
            tgt.feed(input_ids[:, :-1])
        if draft is not None:
            draft.start(input_ids)
        sync()
        first_token_s = prefill_end = clock()
        last = prompt[-1]  # the one context token not yet in the target's cache
        # Cycles lie end to end: each starts when the previous one's record was complete, so
        # the bookkeeping between two verify passes (the policy's observe and next_tau, the
        # trace write in on_cycle) lands in the next cycle's overhead_s, not in no field.
        t_start = prefill_end

        while True:
            state = PolicyState(request_id, len(cycles), len(prompt) + len(out), len(out),
                                max_new_tokens, len(cycles))
            if len(out) >= max_new_tokens:
                break
            if policy.budget_exhausted(state):
                stopped = "budget"
                break
            context = len(prompt) + len(out)

            # 1. The policy picks tau (0 = a target-only step). It is asked even with no draft:
            # asking commits a verify pass to its budget, as in the simulator.
            tau = useful_tau(state, policy.next_tau(state))
            if draft is None:
                tau = 0
            t_policy = clock()

            # 2. The draft proposes x_1..x_tau' (tau' <= tau) with distributions q (tau', V).
            x = _NO_TOKENS
            x_list: list[int] = []
            q: torch.Tensor | None = None
            if tau > 0 and draft is not None:
                x, q = draft.propose(tau, sampling, gen, policy)
                x_list = x.tolist()
                tau = len(x_list)
                if q is not None:
                    q = match_vocab(q, vocab)
            sync()
            t_drafted = clock()

            # 3. ONE target forward over [last, x_1..x_tau]: logits for positions 1..tau+1.
            step = torch.tensor([[last, *x_list]], device=device)  # (1, tau+1)
            logits = tgt.feed(step, logits_to_keep=tau + 1)  # (tau+1, V)
            sync()
            t_verified = clock()

            # 4. Accept a prefix of the draft and take the target's token (correction or bonus).
            draft_prob: list[float] | None = None
            target_prob: list[float] | None = None
            if sampling.greedy:
                n, y = accept_greedy(x_list, logits.argmax(dim=-1).tolist())
                p = probs_from_logits(logits[:tau], sampling) if record_probs and tau else None
            else:
                p = probs_from_logits(logits, sampling)  # (tau+1, V)
                n, y = accept_sampling(x, q, p, gen) if tau else _sample_one(p[0], gen)
            if p is not None and tau:
                rows = torch.arange(tau, device=logits.device)
                target_prob = p[rows, x].tolist()
                draft_prob = q[rows, x].tolist() if q is not None else [1.0] * tau
            new_tokens = [*x_list[:n], y]

            # 5. Crop both caches to the accepted context; ``y`` is the next cycle's ``last``.
            tgt.crop_to(context + n)
            if draft is not None:
                draft.update(n, new_tokens)
            last = y

            # Stop at EOS or at the token limit (emitted may then be < accepted + 1).
            emitted = min(len(new_tokens), max_new_tokens - len(out))
            for i, tok in enumerate(new_tokens[:emitted]):
                if tok in eos:
                    emitted, stopped = i + 1, "eos"
                    break
            out.extend(new_tokens[:emitted])

            # 6. Record the cycle and let the policy learn from it.
            t_end = clock()
            record = CycleRecord(
                request_id=request_id,
                cycle=len(cycles),
                start_s=t_start,
                tau=tau,
                accepted=n,
                emitted=emitted,
                draft_s=t_drafted - t_policy,
                verify_s=t_verified - t_drafted,
                # the policy's decision, the acceptance, the crops, and the previous cycle's
                # observe / trace write (all since this cycle's start)
                overhead_s=(t_policy - t_start) + (t_end - t_verified),
                context_tokens=context,
                draft_prob=draft_prob,
                target_prob=target_prob,
            )
            cycles.append(record)
            policy.observe(record)
            if len(cycles) == 1:
                first_token_s = t_end
            if on_cycle is not None:
                on_cycle(record)
            t_start = t_end
            if stopped == "eos":
                break

    return DecodeResult(
        tokens=out,
        cycles=cycles,
        prefill_s=prefill_end - start_s,
        first_token_s=first_token_s,
        verify_passes=len(cycles),
        stopped=stopped,
        start_s=start_s,
        end_s=clock(),
    )


def _sample_one(p: torch.Tensor, gen: torch.Generator) -> tuple[int, int]:
    """A target-only sampled step: nothing accepted, one token drawn from p."""
    return 0, int(torch.multinomial(p, 1, generator=gen).item())


def target_only_generate(
    target: TargetModel,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    eos_token_ids: set[int] | None = None,
) -> list[int]:
    """Plain autoregressive decoding with the same sampler (the reference for tests/benches)."""
    from sim.policies.library import TargetOnly

    result = speculative_generate(target, None, TargetOnly(), input_ids,
                                  max_new_tokens=max_new_tokens, sampling=sampling,
                                  eos_token_ids=eos_token_ids)
    return result.tokens
