"""Batched speculative decoding: B requests decoded together, joining and leaving between steps.

One engine step (:meth:`BatchDecoder.step`), for the rows (requests) in the batch:

1. the run's policy plans the step's draft lengths over the rows' own forks
   (``plan_batch(forks, states)``; each request decodes under its own ``fork()``, never one
   shared object; each state carries the batch size and, when the server has a profile, the
   step cost); the step's token budget (``max_step_tokens``, counting ``tau + 1`` per row)
   trims the longest;
2. the draft proposes for every row at once (:mod:`live.batch_drafts`);
3. ONE target forward over every row's ``[last, x_1..x_tau]`` (padded to the longest);
4. per-row acceptance, exactly the single-stream rule (:func:`live.sampling.accept_greedy` /
   :func:`live.sampling.accept_sampling`, each row with its own generator);
5. each row's caches are rolled back to its accepted context (the rejected columns become
   holes of the shared cache, :mod:`live.batch_cache`), the draft is told what was kept;
6. one cycle record per row (``batch_size`` = rows in the step, ``cycle_s`` = the step's wall
   time), the row's policy observes it, and finished rows (EOS, stop sequence, length, budget)
   leave. Requests join (:meth:`BatchDecoder.add`, which prefills them) between steps.

Cycle convention as in :mod:`live.decode`: prefill feeds the prompt minus its last token and
emits nothing; each cycle emits ``accepted + 1`` tokens (fewer at a stop).

Cache layout, chosen by measurement (``tests/bench/bench_batch.py``, SmolLM2-135M fp32 on this
2-core CPU, 1 thread, tau = 4, verify steps keeping a random prefix): the shared cache with holes
(:mod:`live.batch_cache`: one padded (B, H, L, D) tensor per layer, 4-D masks, per-row positions)
against per-row caches stacked into a batch every step (which copies every row's context twice
per step) and against one forward per row: 4 rows x ~300 tokens 1.00 : 1.03 : 2.03, 8 rows x
~200 tokens 1.00 : 1.10 : 2.80 (time per step; logits of the three agree to 8e-5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from live.batch_cache import BatchedLM
from live.batch_drafts import BatchDraft
from live.device import synchronizer
from live.drafts import uses_confidence
from live.sampling import (
    SamplingConfig,
    accept_greedy,
    accept_sampling,
    make_generator,
    match_vocab,
    probs_from_logits,
)
from sim.policies.library import Policy, PolicyState, StepCost, useful_tau
from tracing.errors import SpecsimError
from tracing.schema import CycleRecord


@dataclass
class BatchRequest:
    """One request for the batch decoder.

    ``key`` is the decoder's own integer key (and the policy's ``request_id``); ``trace_id`` is
    what the trace records (``key`` when ``None``). ``stop``, called with the output so far
    after each new token, is True when a stop sequence has just completed (the request ends
    with that token; cutting the text is the caller's business).
    """

    key: int
    input_ids: torch.Tensor  # (1, n)
    max_new_tokens: int
    sampling: SamplingConfig
    policy: Policy
    eos_token_ids: set[int] = field(default_factory=set)
    stop: Callable[[list[int]], bool] | None = None
    trace_id: Any = None

    def __post_init__(self) -> None:
        if self.input_ids.ndim != 2 or self.input_ids.shape[1] < 1:
            raise SpecsimError("batch request: the prompt must have at least one token")
        if self.max_new_tokens < 1:
            raise SpecsimError(f"batch request: max_new_tokens must be >= 1, "
                               f"got {self.max_new_tokens}")
        if self.trace_id is None:
            self.trace_id = self.key


@dataclass
class Row:
    """A request in the batch and what it has produced so far (clock units)."""

    request: BatchRequest
    prompt: list[int]
    last: int  # the context token not yet in the target's cache
    generator: torch.Generator
    record_probs: bool
    start_s: float
    prefill_s: float
    out: list[int] = field(default_factory=list)
    cycles: list[CycleRecord] = field(default_factory=list)
    first_token_s: float | None = None
    stopped: str | None = None  # eos | length | budget once finished

    def state(self, batch_size: int = 1, step_cost: StepCost | None = None) -> PolicyState:
        """What the row's policy may look at before its next cycle."""
        n = len(self.cycles)
        return PolicyState(self.request.key, n, len(self.prompt) + len(self.out),
                           len(self.out), self.request.max_new_tokens, n, batch_size,
                           step_cost)


@dataclass
class StepOutcome:
    """What one step did for one row: its new tokens, its cycle (``None`` for a request
    ended by its verify budget before running one) and, when it finished, why."""

    row: Row
    new_tokens: list[int]
    cycle: CycleRecord | None
    finished: str | None


_T0 = time.perf_counter()


def _clock() -> float:
    return time.perf_counter() - _T0


class BatchDecoder:
    """Continuous batching over one target (and one batched draft, or none).

    ``max_batch`` rows at most; ``max_step_tokens`` caps the tokens one target pass scores
    (``sum(tau + 1)`` over the rows). ``policy`` is the run's policy, asked to plan each step
    over the rows' forks (each request's ``policy`` should be ``policy.fork()``); without it,
    each row's own ``next_tau``. ``step_cost`` (seconds of a step of B rows drafting t) goes to
    the policies in their states. Greedy output of every row is token-identical to
    single-request target-only greedy decoding (up to float rounding of batched kernels, which
    fp32 keeps below any logit gap seen in the tests); sampled output follows the target's
    distribution, each row drawing from its own seeded generator.
    """

    def __init__(self, target: Any, draft: BatchDraft | None, *, max_batch: int = 8,
                 max_step_tokens: int = 512, policy: Policy | None = None,
                 step_cost: StepCost | None = None,
                 clock: Callable[[], float] = _clock) -> None:
        if max_batch < 1:
            raise SpecsimError(f"--max-batch must be >= 1, got {max_batch}")
        if max_step_tokens < max_batch:
            raise SpecsimError(f"max tokens per step ({max_step_tokens}) must be >= max batch "
                               f"({max_batch}): every row scores at least one token")
        self.target = target
        self.device = target.device
        self.draft = draft
        self.max_batch = max_batch
        self.max_step_tokens = max_step_tokens
        self.policy = policy
        self.step_cost = step_cost
        self.clock = clock
        self.lm = BatchedLM(target.model, target.device)
        self.vocab = int(target.model.config.vocab_size)
        self.rows: list[Row] = []
        self._sync: Callable[[], None] = synchronizer(self.device)  # this device (cuda:N, ...)

    @property
    def free(self) -> int:
        """Rows that may still join."""
        return self.max_batch - len(self.rows)

    def add(self, request: BatchRequest) -> Row:
        """Prefill ``request`` and add it to the batch (between steps)."""
        if not self.free:
            raise SpecsimError(f"batch is full ({self.max_batch} rows)")
        start = self.clock()
        ids = request.input_ids.to(self.device)
        prompt = [int(t) for t in ids[0].tolist()]
        # a request's seed is its own here (OpenAI's ``seed``: same seed, same output), not a
        # run's seed shared by every request (capture derives those with request_seed); made
        # first, so a seed the generator refuses fails before any cache is touched
        generator = make_generator(request.sampling.seed, self.device)
        self.lm.add_row(ids[:, :-1] if len(prompt) > 1 else None)
        try:
            if self.draft is not None:
                self.draft.add(ids)
            request.policy.reset(request.key)
            self._sync()
        except BaseException:  # leave the batch as it was: the failed row goes
            self.lm.remove_rows([len(self.rows)])
            raise
        record = not request.sampling.greedy or uses_confidence(request.policy)
        row = Row(request, prompt, prompt[-1], generator, record, start, self.clock() - start)
        self.rows.append(row)
        return row

    def cancel(self, key: int) -> Row | None:
        """Remove the request ``key`` from the batch (client gone, shutdown); its row or None."""
        for b, row in enumerate(self.rows):
            if row.request.key == key:
                self._drop([b])
                return row
        return None

    def _drop(self, rows: list[int]) -> None:
        if not rows:
            return
        self.lm.remove_rows(rows)
        if self.draft is not None:
            self.draft.remove(rows)
        gone = set(rows)
        self.rows = [r for b, r in enumerate(self.rows) if b not in gone]

    def _taus(self) -> list[int]:
        """1. The policy plans the step's taus; the step's token budget trims the longest."""
        if self.draft is None:
            return [0] * len(self.rows)
        states = [r.state(len(self.rows), self.step_cost) for r in self.rows]
        forks = [r.request.policy for r in self.rows]
        if self.policy is not None:
            planned = self.policy.plan_batch(forks, states)
        else:
            planned = [f.next_tau(s) for f, s in zip(forks, states, strict=True)]
        taus = [useful_tau(s, t) for s, t in zip(states, planned, strict=True)]
        while sum(taus) + len(taus) > self.max_step_tokens:
            taus[taus.index(max(taus))] -= 1
        return taus

    @torch.inference_mode()
    def step(self) -> list[StepOutcome]:
        """Run one engine step over every row; finished rows leave the batch."""
        outcomes: list[StepOutcome] = []
        ended = [b for b, r in enumerate(self.rows)
                 if r.request.policy.budget_exhausted(r.state())]
        for b in ended:
            self.rows[b].stopped = "budget"
            outcomes.append(StepOutcome(self.rows[b], [], None, "budget"))
        self._drop(ended)
        if not self.rows:
            return outcomes
        rows, batch = self.rows, len(self.rows)
        t_start = self.clock()
        taus = self._taus()

        # 2. The draft proposes for every row: x (tau',) and q (tau', V) or None (one-hot).
        proposals: list[tuple[torch.Tensor, torch.Tensor | None]] = [
            (torch.zeros(0, dtype=torch.long), None)] * batch
        if self.draft is not None and any(taus):
            proposals = self.draft.propose(
                taus, [r.request.sampling for r in rows], [r.generator for r in rows],
                [r.request.policy for r in rows])
        xs = [p[0].tolist() for p in proposals]
        self._sync()
        t_drafted = self.clock()

        # 3. ONE target forward over every row's [last, x_1..x_tau]: logits (B, K, V).
        contexts = [len(r.prompt) + len(r.out) for r in rows]
        logits = self.lm.feed([[r.last, *x] for r, x in zip(rows, xs, strict=True)])
        self._sync()
        t_verified = self.clock()

        # 4-5. Per row: accept a prefix, add the target's token, roll the caches back.
        results: list[tuple[int, int, list[int], list[float] | None, list[float] | None]] = []
        for b, row in enumerate(rows):
            x_list, (x, q) = xs[b], proposals[b]
            tau = len(x_list)
            if q is not None:
                q = match_vocab(q, self.vocab)
            n, y, draft_prob, target_prob = self._accept(row, x, x_list, q, logits[b, : tau + 1])
            new_tokens = [*x_list[:n], y]
            self.lm.truncate(b, contexts[b] + n)
            if self.draft is not None:
                self.draft.update(b, n, new_tokens)
            row.last = y
            results.append((tau, n, new_tokens, draft_prob, target_prob))
        t_end = self.clock()

        # 6. Record one cycle per row; finished rows leave.
        done: list[int] = []
        for b, (row, (tau, n, new_tokens, draft_prob, target_prob)) in enumerate(
                zip(rows, results, strict=True)):
            emitted, stopped = self._emitted(row, new_tokens)
            row.out.extend(new_tokens[:emitted])
            cycle = CycleRecord(
                request_id=row.request.trace_id, cycle=len(row.cycles), start_s=t_start, tau=tau,
                accepted=n, emitted=emitted, draft_s=t_drafted - t_start,
                verify_s=t_verified - t_drafted, overhead_s=t_end - t_verified,
                context_tokens=contexts[b], draft_prob=draft_prob, target_prob=target_prob,
                batch_size=batch, cycle_s=t_end - t_start)
            row.cycles.append(cycle)
            row.request.policy.observe(cycle)
            if row.first_token_s is None:
                row.first_token_s = t_end
            if stopped is not None:
                row.stopped = stopped
                done.append(b)
            outcomes.append(StepOutcome(row, new_tokens[:emitted], cycle, stopped))
        self._drop(done)
        self.lm.compact()
        if self.draft is not None:
            self.draft.end_step()
        return outcomes

    def _accept(self, row: Row, x: torch.Tensor, x_list: list[int], q: torch.Tensor | None,
                logits: torch.Tensor
                ) -> tuple[int, int, list[float] | None, list[float] | None]:
        """The single-stream acceptance rule on one row's logits (tau + 1, V)."""
        sampling, tau = row.request.sampling, len(x_list)
        if sampling.greedy:
            n, y = accept_greedy(x_list, logits.argmax(dim=-1).tolist())
            p = probs_from_logits(logits[:tau], sampling) if row.record_probs and tau else None
        else:
            p = probs_from_logits(logits, sampling)  # (tau + 1, V)
            if tau:
                n, y = accept_sampling(x.to(p.device), q, p, row.generator)
            else:
                n, y = 0, int(torch.multinomial(p[0], 1, generator=row.generator).item())
        if p is None or not tau:
            return n, y, None, None
        idx = torch.arange(tau, device=p.device)
        xd = x.to(p.device)
        target_prob = p[idx, xd].tolist()
        draft_prob = q[idx, xd].tolist() if q is not None else [1.0] * tau
        return n, y, draft_prob, target_prob

    def _emitted(self, row: Row, new_tokens: list[int]) -> tuple[int, str | None]:
        """How many of ``new_tokens`` the row keeps, and why it stops (or None)."""
        req = row.request
        room = req.max_new_tokens - len(row.out)
        for i, tok in enumerate(new_tokens[:room]):
            if tok in req.eos_token_ids:
                return i + 1, "eos"
            if req.stop is not None and req.stop([*row.out, *new_tokens[: i + 1]]):
                return i + 1, "eos"
        emitted = min(len(new_tokens), room)
        return emitted, ("length" if emitted == room else None)
