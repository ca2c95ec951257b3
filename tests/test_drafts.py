"""Drafts: n-gram lookup, the layer-skip view, model-draft cache rollback, spec parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import live.models
from live.drafts import LayerSkipDraft, ModelDraft, NgramDraft, make_draft, shallow_copy
from live.sampling import SamplingConfig, make_generator
from sim.policies.library import make_policy
from tiny import tiny_llama
from tracing.errors import SpecsimError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Loaded:
    """Stand-in for live.models.LoadedModel."""

    model: Any
    name: str = "tiny"
    device: str = "cpu"
    dtype: str = "float32"
    tokenizer: Any = None


def _target(model: Any, name: str = "tiny") -> Any:
    """A target for make_draft (typed Any: it stands in for LoadedModel)."""
    return Loaded(model, name=name)


@pytest.fixture(scope="module")
def llama() -> Any:
    return tiny_llama(0, vocab=48, layers=4, max_positions=256)


def _ngram(ids: list[int], n: int = 3) -> NgramDraft:
    d = NgramDraft(n)
    d.start(torch.tensor([ids]))
    return d


def test_ngram_finds_the_earliest_longest_match() -> None:
    # suffix [1, 2] occurs at 0 (followed by 5) and at 3 (followed by 6): the earliest wins,
    # as in transformers' prompt lookup
    assert _ngram([1, 2, 5, 1, 2, 6, 7, 1, 2]).lookup(3) == [5, 1, 2]
    # the 3-gram [9, 1, 2] beats the later 2-gram match
    assert _ngram([9, 1, 2, 4, 4, 1, 2, 8, 9, 1, 2]).lookup(2) == [4, 4]
    # falls back to a 1-gram, and a continuation may run to the end of the context
    assert _ngram([3, 7, 8, 3]).lookup(5) == [7, 8, 3]
    assert _ngram([1, 2, 3]).lookup(4) == []
    assert _ngram([4]).lookup(4) == []
    assert _ngram([1, 2, 5, 1, 2], n=1).lookup(2) == [5, 1]


def test_ngram_propose_and_update() -> None:
    d = _ngram([1, 2, 3, 1, 2])
    gen, cfg, policy = make_generator(0), SamplingConfig(), make_policy("fixed:tau=2")
    tokens, q = d.propose(2, cfg, gen, policy)
    assert tokens.tolist() == [3, 1] and q is None and tokens.dtype == torch.long
    d.update(1, [3, 9])  # kept 3, target said 9
    assert d.ids.tolist() == [1, 2, 3, 1, 2, 3, 9]
    assert d.propose(2, cfg, gen, policy)[0].tolist() == []


def test_layerskip_shares_weights_and_leaves_target_whole(llama: Any) -> None:
    view = shallow_copy(llama, 2)
    assert len(view.model.layers) == 2 and len(llama.model.layers) == 4
    assert llama.config.num_hidden_layers == 4 and view.config.num_hidden_layers == 2
    assert view.lm_head.weight.data_ptr() == llama.lm_head.weight.data_ptr()
    assert view.model.layers[1] is llama.model.layers[1]
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        # the view = running only the first 2 layers, then the final norm and lm_head
        h = llama(ids, output_hidden_states=True).hidden_states[2]
        want = llama.lm_head(llama.model.norm(h))
        torch.testing.assert_close(view(ids).logits, want, atol=1e-5, rtol=1e-4)
        full = llama(ids).logits
    assert not torch.allclose(view(ids).logits, full)


def test_layerskip_refuses_what_it_cannot_do(llama: Any) -> None:
    with pytest.raises(SpecsimError, match=r"layers must be in 1\.\.3"):
        shallow_copy(llama, 4)
    with pytest.raises(SpecsimError, match="layers must be in"):
        shallow_copy(llama, 0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_embd=16, n_layer=2, n_head=2)).eval()
    with pytest.raises(SpecsimError, match="Llama-family"):
        make_draft("layerskip:layers=1", _target(gpt2))


def test_model_draft_rollback_equals_reencoding(llama: Any) -> None:
    """After each update (rejection, full acceptance, target-only step) the draft's next
    distribution equals a fresh forward over its whole context."""
    draft = ModelDraft(llama, "self")
    prompt = [5, 9, 11, 2, 7]
    draft.start(torch.tensor([prompt]))
    gen, cfg, policy = make_generator(0), SamplingConfig(), make_policy("fixed:tau=4")
    reads_q = make_policy("confidence:threshold=0.0,max_tau=1")
    context = list(prompt)
    for n_kept, extra in ((1, 13), (4, 21), (0, 30), (None, 17)):
        if n_kept is None:  # a target-only cycle: nothing proposed
            new = [extra]
            draft.update(0, new)
        else:
            tokens, _ = draft.propose(4, cfg, gen, policy)
            assert tokens.shape == (4,)
            new = [*tokens.tolist()[:n_kept], extra]
            draft.update(n_kept, new)
        context += new
        assert draft.ids == context
        # a policy that reads the draft's probabilities gets q even when greedy
        tokens, q = draft.propose(1, cfg, gen, reads_q)
        assert q is not None
        with torch.no_grad():
            want = torch.softmax(llama(torch.tensor([context])).logits[0, -1], dim=-1)
        torch.testing.assert_close(q[0], want, atol=1e-5, rtol=1e-4)
        draft.update(0, [])  # undo that probe (nothing kept, nothing appended)
        assert draft.lm.length == len(context) - 1


def test_model_draft_stops_early_with_confidence(llama: Any) -> None:
    draft = ModelDraft(llama, "self")
    draft.start(torch.tensor([[1, 2, 3]]))
    never = make_policy("confidence:threshold=1.0,max_tau=8")  # no token reaches p = 1
    tokens, q = draft.propose(8, SamplingConfig(), make_generator(0), never)
    assert tokens.shape == (1,) and q is not None and q.shape == (1, 48)
    always = make_policy("confidence:threshold=0.0,max_tau=8")
    draft.update(0, [4])
    tokens, _ = draft.propose(8, SamplingConfig(), make_generator(0), always)
    assert tokens.shape == (8,)


def test_greedy_drafting_computes_no_softmax(llama: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Greedy drafting for a policy that never reads q: argmax of the logits, no softmax, q is
    None (one-hot); the tokens are those the softmax path picks. A policy that reads q (the
    confidence one) or sampling still gets the probabilities."""
    import live.drafts

    calls: list[int] = []
    real = live.drafts.probs_from_logits

    def counting(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
        calls.append(1)
        return real(logits, config)

    monkeypatch.setattr(live.drafts, "probs_from_logits", counting)
    prompt = torch.tensor([[1, 2, 3, 4]])
    greedy, gen = SamplingConfig(), make_generator(0)
    fast = ModelDraft(llama, "self")
    fast.start(prompt)
    tokens, q = fast.propose(5, greedy, gen, make_policy("fixed:tau=5"))
    assert q is None and calls == []
    reads = ModelDraft(llama, "self")
    reads.start(prompt)
    same, q = reads.propose(5, greedy, gen, make_policy("confidence:threshold=0.0,max_tau=5"))
    assert q is not None and q.shape == (5, 48) and len(calls) == 5
    assert tokens.tolist() == same.tolist() == q.argmax(dim=-1).tolist()
    reads.update(0, [])  # nothing kept: back to the prompt
    _, q = reads.propose(2, SamplingConfig(1.0), gen, make_policy("fixed:tau=2"))
    assert q is not None and len(calls) == 7


def test_make_draft_specs(llama: Any) -> None:
    target = _target(llama)
    assert make_draft("none", target) is None
    ngram = make_draft("ngram", target)
    assert isinstance(ngram, NgramDraft) and ngram.n == 3
    ngram5 = make_draft("ngram:n=5", target)
    assert isinstance(ngram5, NgramDraft) and ngram5.n == 5
    skip = make_draft("layerskip:layers=3", target)
    assert isinstance(skip, LayerSkipDraft) and len(skip.lm.model.model.layers) == 3
    assert isinstance(make_draft("layerskip", _target(_deep_llama())), LayerSkipDraft)
    for bad, match in (("", "empty"), ("ngram:k=2", "unknown option"), ("ngram:n=x", "integer"),
                       ("ngram:n=0", "n must be"), ("none:x=1", "no options"),
                       ("layerskip:layers=9", "layers must be")):
        with pytest.raises(SpecsimError, match=match):
            make_draft(bad, target)


def _deep_llama() -> Any:
    return tiny_llama(None, vocab=16, layers=9, hidden=16, heads=2, kv_heads=1)


def test_make_draft_loads_a_model_and_checks_tokenizers(llama: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_load(spec: str, device: str | None = None, dtype: str | None = None) -> Loaded:
        calls.append(("load", spec, device, dtype))
        return Loaded(llama, name=spec)

    def fake_check(a: Any, b: Any, sample: int = 64) -> None:
        calls.append(("check", a.name, b.name))
        if b.name == "other":
            raise SpecsimError("draft 'other' has a different tokenizer")

    monkeypatch.setattr(live.models, "load_model", fake_load)
    monkeypatch.setattr(live.models, "check_tokenizers", fake_check)
    draft = make_draft("some/model", _target(llama, "target"))
    assert isinstance(draft, ModelDraft) and draft.name == "some/model"
    assert calls == [("load", "some/model", "cpu", "float32"), ("check", "target", "some/model")]
    with pytest.raises(SpecsimError, match="different tokenizer"):
        make_draft("other", _target(llama, "target"))
