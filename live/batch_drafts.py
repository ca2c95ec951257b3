"""Drafts over a batch: each kind of :mod:`live.drafts`, proposing for every row at once.

The protocol mirrors the single-stream one, with a row index (rows are the batch's current
requests, in :class:`live.batch.BatchDecoder`'s order):

1. ``add(input_ids)`` -> row: a request joins with its prompt (1, n);
2. ``remove(rows)``: requests leave (the others shift down, keeping their order);
3. ``propose(taus, samplings, generators, policies)`` -> per row ``(tokens (tau',), q | None)``
   with ``tau' <= taus[b]`` (0 where nothing is proposed);
4. ``update(row, n_accepted, new_tokens)``: as :meth:`live.drafts.Draft.update`.

Kinds: :class:`BatchModelDraft` (another causal LM, or the target's first layers: one forward
per drafted position over the whole batch, through a :class:`live.batch_cache.BatchedLM`) and
:class:`BatchNgramDraft` (prompt lookup per row; no model). ``none`` is no draft at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch

from live.batch_cache import BatchedLM
from live.drafts import NgramDraft, uses_confidence
from live.sampling import SamplingConfig, pick_token, probs_from_logits
from sim.policies.library import Policy
from tracing.errors import SpecsimError

if TYPE_CHECKING:
    from live.models import LoadedModel

Proposal = tuple[torch.Tensor, torch.Tensor | None]


class BatchDraft(Protocol):
    """What :class:`live.batch.BatchDecoder` needs from a draft."""

    name: str

    def add(self, input_ids: torch.Tensor) -> int:
        """A request joins with prompt ``input_ids`` (1, n); returns its row."""
        ...

    def remove(self, rows: list[int]) -> None:
        """These rows leave."""

    def propose(self, taus: list[int], samplings: list[SamplingConfig],
                generators: list[torch.Generator], policies: list[Policy]) -> list[Proposal]:
        """Up to ``taus[b]`` tokens per row and their draft distributions (or ``None``)."""
        ...

    def update(self, row: int, n_accepted: int, new_tokens: list[int]) -> None:
        """Row ``row`` kept its first ``n_accepted`` proposed tokens; ``new_tokens`` appended."""

    def end_step(self) -> None:
        """Called between engine steps (housekeeping)."""


class BatchModelDraft:
    """A causal LM drafting for every row at once, its cache a :class:`BatchedLM`.

    As :class:`live.drafts.ModelDraft`, each row's cache holds its context minus one or two
    pending tokens, which the first forward of the next proposal feeds; rows with nothing to
    draft this step feed their pending tokens too (they are context either way), so every row
    has a cached token before the forward passes that follow.
    """

    def __init__(self, model: Any, name: str, device: str = "cpu") -> None:
        self.lm = BatchedLM(model, device)
        self.name = name
        self.device = device
        self.ids: list[list[int]] = []

    def add(self, input_ids: torch.Tensor) -> int:
        """Prefill the row with all of the prompt but its last token."""
        ids = [int(t) for t in input_ids[0].tolist()]
        self.ids.append(ids)
        return self.lm.add_row(input_ids[:, :-1] if len(ids) > 1 else None)

    def remove(self, rows: list[int]) -> None:
        """Drop the rows' caches and contexts."""
        gone = set(rows)
        self.ids = [x for b, x in enumerate(self.ids) if b not in gone]
        self.lm.remove_rows(rows)

    @torch.inference_mode()
    def propose(self, taus: list[int], samplings: list[SamplingConfig],
                generators: list[torch.Generator], policies: list[Policy]) -> list[Proposal]:
        """Draft autoregressively: forward j feeds every row still drafting its token j-1."""
        rows = len(taus)
        tokens: list[list[torch.Tensor]] = [[] for _ in range(rows)]
        qs: list[list[torch.Tensor]] = [[] for _ in range(rows)]
        if max(taus, default=0) > 0:
            asks = [uses_confidence(p) for p in policies]
            # 1. every row's pending context tokens; later, each drafting row's last draft
            inputs = [self.ids[b][self.lm.lengths[b]:] for b in range(rows)]
            active = [t > 0 for t in taus]
            for j in range(max(taus)):
                logits = self.lm.feed(inputs)  # (B, K, V)
                nxt: list[list[int]] = [[] for _ in range(rows)]
                for b in range(rows):
                    if not active[b]:
                        continue
                    q = probs_from_logits(logits[b, len(inputs[b]) - 1], samplings[b])  # (V,)
                    x = pick_token(q, samplings[b].greedy, generators[b])
                    tokens[b].append(x)
                    qs[b].append(q)
                    if j == taus[b] - 1 or (asks[b] and not policies[b].keep_drafting(
                            j, float(q[x]))):
                        active[b] = False
                    else:
                        nxt[b] = [int(x)]
                if not any(active):
                    break
                inputs = nxt
        # Each row's cache now holds its context plus every drafted token but its last.
        empty = torch.zeros(0, dtype=torch.long, device=self.device)
        return [(torch.stack(t), torch.stack(q)) if t else (empty, None)
                for t, q in zip(tokens, qs, strict=True)]

    def update(self, row: int, n_accepted: int, new_tokens: list[int]) -> None:
        """Drop the row's rejected drafts from its cache; remember its new context."""
        ids = self.ids[row]
        before = len(ids)
        ids.extend(new_tokens)
        self.lm.truncate(row, min(self.lm.lengths[row], before + n_accepted, len(ids) - 1))

    def end_step(self) -> None:
        """Between steps: squeeze the cache's holes out when they have grown large."""
        self.lm.compact()


class BatchNgramDraft:
    """Prompt lookup per row (:class:`live.drafts.NgramDraft`), no model."""

    def __init__(self, n: int = 3, device: str = "cpu") -> None:
        self.n = n
        self.name = f"ngram:n={n}"
        self.device = device
        self.rows: list[NgramDraft] = []

    def add(self, input_ids: torch.Tensor) -> int:
        """Remember the row's prompt."""
        row = NgramDraft(self.n, self.device)
        row.start(input_ids)
        self.rows.append(row)
        return len(self.rows) - 1

    def remove(self, rows: list[int]) -> None:
        """Forget the rows."""
        gone = set(rows)
        self.rows = [r for b, r in enumerate(self.rows) if b not in gone]

    def propose(self, taus: list[int], samplings: list[SamplingConfig],
                generators: list[torch.Generator], policies: list[Policy]) -> list[Proposal]:
        """Each row's looked-up continuation (possibly empty); ``q`` is ``None`` (one-hot)."""
        return [(torch.tensor(r.lookup(t) if t > 0 else [], dtype=torch.long,
                              device=self.device), None)
                for r, t in zip(self.rows, taus, strict=True)]

    def update(self, row: int, n_accepted: int, new_tokens: list[int]) -> None:
        """Append the row's new tokens to its searched context."""
        self.rows[row].update(n_accepted, new_tokens)

    def end_step(self) -> None:
        """Nothing to tidy."""


def make_batch_draft(spec: str, target: LoadedModel) -> BatchModelDraft | BatchNgramDraft | None:
    """The batched draft named by ``spec`` (the same specs as :func:`live.drafts.make_draft`)."""
    from live.drafts import make_draft

    single = make_draft(spec, target)  # parses and validates the spec, loads a model draft
    if single is None:
        return None
    if isinstance(single, NgramDraft):
        return BatchNgramDraft(single.n, device=target.device)
    lm = getattr(single, "lm", None)
    if lm is None:
        raise SpecsimError(f"draft {spec!r}: no batched version of this draft kind")
    return BatchModelDraft(lm.model, single.name, device=target.device)


__all__ = ["BatchDraft", "BatchModelDraft", "BatchNgramDraft", "make_batch_draft"]
