"""Drafts: what proposes the tokens the target verifies.

A draft follows transformers' candidate-generator shape -- it proposes, and is told what was
kept -- so a new kind never touches the acceptance code in :mod:`live.decode`. Per request:

1. ``start(input_ids)``: the prompt (1, n); prefill whatever state the draft keeps;
2. ``propose(tau, sampling, generator, policy)`` -> ``(tokens (tau',), q (tau', V) | None)``
   with ``tau' <= tau`` (the policy's ``keep_drafting`` may stop it early; ``tau' == 0`` means
   nothing to propose). ``q`` is ``None`` for a deterministic draft (q one-hot on its tokens);
3. ``update(n_accepted, new_tokens)``: of the tokens just proposed, the first ``n_accepted``
   were kept, and ``new_tokens`` (those plus the target's token) were appended to the context.

Optional: ``limit_vocab(vocab_size)``, called by the decoder with the target's vocabulary size
before a request, for drafts that could otherwise propose tokens the target does not have.

Kinds: :class:`ModelDraft` (another causal LM), :class:`NgramDraft` (prompt lookup),
:class:`LayerSkipDraft` (the target's first layers); ``none`` is no draft at all.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from live.kvcache import CachedLM, KVModel
from live.sampling import SamplingConfig, pick_token, probs_from_logits
from sim.policies.library import BudgetedPolicy, Policy
from tracing.errors import SpecsimError

if TYPE_CHECKING:
    from live.models import LoadedModel

# Llama-shaped decoders: model.model.{embed_tokens, layers, norm, rotary_emb} + model.lm_head.
LAYERSKIP_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def uses_confidence(policy: Policy) -> bool:
    """True when the policy looks at draft probabilities (overrides ``keep_drafting``)."""
    while isinstance(policy, BudgetedPolicy):
        policy = policy.inner
    return type(policy).keep_drafting is not Policy.keep_drafting


class Draft(Protocol):
    """What :func:`live.decode.speculative_generate` needs from a draft."""

    name: str

    def start(self, input_ids: torch.Tensor) -> None:
        """A new request with prompt ``input_ids`` (1, n)."""

    def propose(
        self, tau: int, sampling: SamplingConfig, generator: torch.Generator, policy: Policy
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Up to ``tau`` tokens (tau',) and their draft distributions (tau', V) or ``None``."""
        ...

    def update(self, n_accepted: int, new_tokens: list[int]) -> None:
        """The first ``n_accepted`` proposed tokens were kept; ``new_tokens`` were appended."""


class ModelDraft:
    """Another causal LM drafting autoregressively, with its own KV cache kept across cycles.

    Its cache holds the context minus the last one or two tokens (``pending``): after a cycle the
    target's own token, and the last drafted token when everything was accepted, have not been
    run through the draft yet; the next ``propose`` feeds them in its first forward.
    """

    def __init__(self, model: Any, name: str, device: str = "cpu",
                 vocab_size: int | None = None, lm: KVModel | None = None) -> None:
        self.lm: KVModel = lm if lm is not None else CachedLM(model)
        self.name = name
        self.device = device
        self.ids: list[int] = []
        self.vocab_size = vocab_size  # the target's: draft only tokens the target has

    def limit_vocab(self, vocab_size: int) -> None:
        """Draft only tokens ``< vocab_size`` (the target's vocabulary): a draft whose embedding
        table is larger (padded over the same tokenizer) must never propose a token the target
        cannot embed. Its distribution is renormalised over those tokens (the logits are cut
        before the softmax), which is still a valid proposal for exact speculative sampling."""
        self.vocab_size = int(vocab_size)

    @torch.inference_mode()
    def start(self, input_ids: torch.Tensor) -> None:
        """Prefill the draft's cache with all of the prompt but its last token."""
        self.lm.reset()
        self.ids = [int(t) for t in input_ids[0].tolist()]
        if len(self.ids) > 1:
            self.lm.feed(input_ids[:, :-1].to(self.device))

    @torch.inference_mode()
    def propose(
        self, tau: int, sampling: SamplingConfig, generator: torch.Generator, policy: Policy
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draft up to ``tau`` tokens one forward at a time; tokens stay on the device.

        Greedy drafting with a policy that does not read the draft's probabilities computes no
        softmax: the token is the logits' argmax and ``q`` is ``None`` (one-hot on it, which is
        what a greedy draft's distribution is)."""
        inp = torch.tensor([self.ids[self.lm.length:]], device=self.device)  # (1, pending)
        tokens: list[torch.Tensor] = []
        qs: list[torch.Tensor] = []
        ask = uses_confidence(policy)  # only then read q(x) back (a device sync per token)
        want_q = ask or not sampling.greedy
        vocab = self.vocab_size
        for i in range(tau):
            logits = self.lm.feed(inp)[-1]  # (V_draft,)
            if vocab is not None and logits.shape[-1] > vocab:
                logits = logits[:vocab]  # (V,): never a token the target lacks
            if want_q:
                q = probs_from_logits(logits, sampling)  # (V,)
                x = pick_token(q, sampling.greedy, generator)  # ()
                qs.append(q)
            else:
                x = logits.argmax(dim=-1)  # () greedy: no softmax needed
            tokens.append(x)
            if i == tau - 1 or (ask and not policy.keep_drafting(i, float(q[x]))):
                break
            inp = x.view(1, 1)
        # The cache now holds the context plus every drafted token but the last.
        return torch.stack(tokens), (torch.stack(qs) if want_q else None)

    def update(self, n_accepted: int, new_tokens: list[int]) -> None:
        """Drop the rejected drafted tokens from the cache; remember the new context."""
        before = len(self.ids)
        self.ids.extend(new_tokens)
        # at least one context token stays pending: the next forward needs an input
        self.lm.crop_to(min(self.lm.length, before + n_accepted, len(self.ids) - 1))


class LayerSkipDraft(ModelDraft):
    """Self-speculation (LayerSkip): the target's first ``layers`` decoder layers, then the
    target's final norm and lm_head, with a KV cache of its own. Weights are shared, not copied."""

    def __init__(self, target: Any, layers: int, name: str, device: str = "cpu",
                 static_len: int | None = None) -> None:
        view = shallow_copy(target, layers)
        super().__init__(view, name, device, lm=static_lm(view, static_len))


def shallow_copy(model: Any, layers: int) -> Any:
    """A view of a Llama-family causal LM that runs only its first ``layers`` decoder layers."""
    config: Any = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    inner: Any = getattr(model, "model", None)
    if model_type not in LAYERSKIP_MODEL_TYPES or not hasattr(inner, "layers"):
        raise SpecsimError(
            f"draft layerskip: needs a Llama-family target ({', '.join(sorted(LAYERSKIP_MODEL_TYPES))}),"
            f" got model type {model_type!r}"
        )
    total = len(inner.layers)
    if not 1 <= layers < total:
        raise SpecsimError(f"draft layerskip: layers must be in 1..{total - 1}, got {layers}")
    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = layers
    if getattr(cfg, "layer_types", None) is not None:
        cfg.layer_types = list(cfg.layer_types)[:layers]
    # Copy the two module objects without their parameters: same submodules, shorter layer list.
    new_inner = copy.copy(inner)
    new_inner._modules = dict(inner._modules)
    new_inner.layers = torch.nn.ModuleList(list(inner.layers)[:layers])
    new_inner.config = cfg
    new_outer = copy.copy(model)
    new_outer._modules = dict(model._modules)
    new_outer.model = new_inner
    new_outer.config = cfg
    return new_outer


class NgramDraft:
    """Prompt lookup (vLLM's n-gram draft, transformers' ``prompt_lookup_num_tokens``): find the
    earliest occurrence of the context's last ``n`` tokens (trying n, n-1, ..., 1) that has a
    continuation, and propose the tokens that followed it -- the same proposals as transformers'
    prompt lookup. The earliest match is usually in the prompt's source text, which is what an
    edit or summary copies. Deterministic: q is one-hot, returned as ``None``."""

    def __init__(self, n: int = 3, device: str = "cpu") -> None:
        if n < 1:
            raise SpecsimError(f"draft ngram: n must be >= 1, got {n}")
        self.n = n
        self.name = f"ngram:n={n}"
        self.device = device
        self.ids = np.zeros(0, dtype=np.int64)

    def start(self, input_ids: torch.Tensor) -> None:
        """Remember the prompt."""
        self.ids = input_ids[0].cpu().numpy().astype(np.int64)

    def lookup(self, tau: int) -> list[int]:
        """The tokens that followed the earliest match of the longest suffix (or [])."""
        ids = self.ids
        size = len(ids)
        for n in range(min(self.n, size - 1), 0, -1):
            suffix = ids[size - n:]
            # windows starting at j = 0 .. size-n-1: each has a following token, none is the suffix
            windows = np.lib.stride_tricks.sliding_window_view(ids[: size - 1], n)
            hits = np.flatnonzero((windows == suffix).all(axis=1))
            if hits.size:
                j = int(hits[0]) + n
                return ids[j: j + tau].tolist()
        return []

    def propose(
        self, tau: int, sampling: SamplingConfig, generator: torch.Generator, policy: Policy
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The looked-up continuation (possibly empty); ``q`` is ``None`` (one-hot)."""
        tokens = self.lookup(tau)
        return torch.tensor(tokens, dtype=torch.long, device=self.device), None

    def update(self, n_accepted: int, new_tokens: list[int]) -> None:
        """Append the new tokens to the searched context."""
        self.ids = np.concatenate([self.ids, np.asarray(new_tokens, dtype=np.int64)])


def _parse_options(kind: str, text: str, allowed: dict[str, int]) -> dict[str, int]:
    out = dict(allowed)
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise SpecsimError(
                f"draft {kind}: unknown option {item!r} (expected {', '.join(allowed)})"
            )
        try:
            out[key] = int(value)
        except ValueError:
            raise SpecsimError(f"draft {kind}: {key} must be an integer, got {value!r}") from None
    return out


def static_lm(model: Any, static_len: int | None) -> KVModel | None:
    """A compiled static-cache LM of ``static_len`` positions (``--compile``), or None."""
    if static_len is None:
        return None
    from live.static import StaticLM

    return StaticLM(model, static_len)


def make_draft(spec: str, target: LoadedModel, static_len: int | None = None) -> Draft | None:
    """Build the draft named by ``spec``: ``none``, ``ngram[:n=3]``, ``layerskip[:layers=8]``,
    or a model spec for :func:`live.models.load_model` (its tokenizer must match the target's).
    ``static_len``: model drafts run on a static cache of that many positions with compiled
    steps (:mod:`live.static`)."""
    spec = spec.strip()
    kind, _, options = spec.partition(":")
    if not kind:
        raise SpecsimError("draft: empty spec (expected none, ngram, layerskip or a model)")
    if kind == "none":
        if options:
            raise SpecsimError(f"draft none: takes no options, got {options!r}")
        return None
    if kind == "ngram":
        n = _parse_options(kind, options, {"n": 3})["n"]
        return NgramDraft(n, device=target.device)
    if kind == "layerskip":
        k = _parse_options(kind, options, {"layers": 8})["layers"]
        return LayerSkipDraft(target.model, k, f"layerskip:layers={k}", device=target.device,
                              static_len=static_len)
    from live.models import check_tokenizers, load_model

    draft = load_model(spec, device=target.device, dtype=target.dtype)
    check_tokenizers(target, draft)
    return ModelDraft(draft.model, draft.name, device=target.device,
                      vocab_size=int(target.model.config.vocab_size),
                      lm=static_lm(draft.model, static_len))
