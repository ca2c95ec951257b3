"""Sampling and the speculative accept/resample rule, as free functions on probability tensors.

Nothing here knows about models or caches: ``probs_from_logits`` turns logits into the
distribution a token is drawn from (temperature, top-p), and :func:`accept_greedy` /
:func:`accept_sampling` decide, from the draft's tokens and both models' distributions, how many
drafted tokens are kept and which token the target adds. All randomness comes from a
``torch.Generator`` that is passed in (seeded by the caller); the global RNG is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tracing.errors import SpecsimError


@dataclass(slots=True)
class SamplingConfig:
    """How tokens are chosen: ``temperature == 0`` is greedy (argmax); ``top_p`` in (0, 1]."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0.0:
            raise SpecsimError(f"sampling: temperature must be >= 0, got {self.temperature!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise SpecsimError(f"sampling: top_p must be in (0, 1], got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        """True when tokens are the argmax (temperature 0)."""
        return self.temperature == 0.0


def make_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (a fresh OS seed when ``None``)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def request_seed(seed: int, request_id: int) -> int:
    """The seed of request ``request_id``'s random stream in a run seeded with ``seed``.

    Every request gets its own stream (two requests of one run never replay the same uniforms,
    so their acceptance outcomes are independent), yet a request's draws depend only on the run's
    seed and its own id -- not on which requests ran before it, so a run is reproducible from its
    seed even when its requests are interleaved with another run's. ``numpy.random.SeedSequence``
    mixes the pair (a 63-bit result: ``torch.Generator.manual_seed`` takes any such int).
    """
    words = np.random.SeedSequence([int(seed) & (2**64 - 1), int(request_id)]).generate_state(2)
    return int((int(words[0]) << 32 | int(words[1])) & (2**63 - 1))


def probs_from_logits(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Logits (..., V) -> probabilities (..., V) in float32.

    Greedy (temperature 0) returns the plain softmax (temperature 1): greedy decoding picks the
    argmax, and these probabilities are only recorded (``draft_prob`` / ``target_prob``) or
    shown to the ``confidence`` policy. Top-p keeps the smallest set of most likely tokens whose
    mass reaches ``top_p`` (the token that crosses the threshold is kept) and renormalises.
    """
    logits = logits.float()
    if config.greedy:
        return torch.softmax(logits, dim=-1)
    probs = torch.softmax(logits / config.temperature, dim=-1)
    if config.top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        # mass strictly before each token; a token is kept while that mass is below top_p
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        sorted_p = sorted_p.masked_fill(before >= config.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def pick_token(probs: torch.Tensor, greedy: bool, generator: torch.Generator) -> torch.Tensor:
    """One token per row of ``probs`` (..., V): the argmax when greedy, else a draw. Shape (...)."""
    if greedy:
        return probs.argmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def accept_greedy(draft_tokens: list[int], target_argmax: list[int]) -> tuple[int, int]:
    """Greedy verification: accept x_i while x_i == argmax p_i; the target adds argmax p_{n+1}.

    ``target_argmax`` has tau + 1 entries (one per verified position plus the bonus position).
    Returns ``(accepted, next_token)``.
    """
    n = 0
    for x, t in zip(draft_tokens, target_argmax, strict=False):
        if x != t:
            break
        n += 1
    return n, target_argmax[n]


def accept_sampling(
    draft_tokens: torch.Tensor,
    q: torch.Tensor | None,
    p: torch.Tensor,
    generator: torch.Generator,
) -> tuple[int, int]:
    """Speculative sampling (Leviathan et al. 2023, Chen et al. 2023): exact w.r.t. ``p``.

    draft_tokens: (tau,) long, x_i drawn from q_i. q: (tau, V) draft distributions, or ``None``
    for a deterministic draft (q_i is one-hot on x_i, e.g. n-gram lookup). p: (tau + 1, V) target
    distributions; row tau is the bonus position. Returns ``(accepted, next_token)``.
    """
    tau = draft_tokens.shape[0]
    rows = torch.arange(tau, device=p.device)
    p_x = p[rows, draft_tokens]  # (tau,) p_i(x_i)
    # One-hot q (deterministic draft): q_i(x_i) = 1, so x_i is kept with probability p_i(x_i).
    q_x = q[rows, draft_tokens] if q is not None else torch.ones_like(p_x)
    # Keep x_i with probability min(1, p_i(x_i) / q_i(x_i)): a uniform u < p/q, written as
    # u * q < p to avoid dividing (q_i(x_i) > 0 because x_i was drawn from q_i).
    u = torch.rand(tau, generator=generator, device=p.device)
    keep = (u * q_x < p_x).int()
    # Tokens are accepted left to right; the first rejection discards the rest.
    n = int(keep.cumprod(0).sum().item()) if tau else 0
    if n == tau:
        # All accepted: the bonus token comes straight from p_{tau+1}.
        dist = p[tau]
    else:
        # Rejected at n: resample from the residual norm(max(0, p_n - q_n)). This is what makes
        # the output distribution exactly p: P(out = y) = min(p, q)(y) + (1 - sum min(p, q))
        # * residual(y) = p(y).
        q_n = q[n] if q is not None else torch.zeros_like(p[n]).index_fill_(0, draft_tokens[n:n + 1], 1.0)
        dist = torch.clamp(p[n] - q_n, min=0.0)
        if float(dist.sum()) <= 0.0:  # p_n == q_n up to rounding: rejection had ~0 probability
            dist = p[n]
    token = int(torch.multinomial(dist, 1, generator=generator).item())
    return n, token


def match_vocab(probs: torch.Tensor, vocab: int) -> torch.Tensor:
    """Pad with zeros or cut the last dim of ``probs`` to ``vocab`` (draft and target embedding
    tables may be padded to different sizes over the same tokenizer)."""
    have = probs.shape[-1]
    if have == vocab:
        return probs
    if have > vocab:
        return probs[..., :vocab]
    return torch.nn.functional.pad(probs, (0, vocab - have))
