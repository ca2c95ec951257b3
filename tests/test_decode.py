"""Speculative decoding end to end on tiny random Llamas (and, marked, on the bundled model).

Greedy: token-identical to target-only greedy decoding for every draft kind and tau.
Sampling: the distribution of the first generated tokens equals the target's, computed exactly.
Rollback: after a rejection the target's cache gives the same logits as re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from transformers import LlamaForCausalLM

from live.decode import DecodeResult, speculative_generate, target_only_generate
from live.drafts import Draft, LayerSkipDraft, ModelDraft, NgramDraft
from live.kvcache import CachedLM
from live.sampling import SamplingConfig, probs_from_logits
from sim.policies.library import make_policy
from tiny import tiny_llama

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Target:
    """Stand-in for live.models.LoadedModel: decode needs only .model and .device."""

    model: Any
    device: str = "cpu"


def perturbed(model: Any, seed: int, scale: float) -> Any:
    """A copy of ``model`` with noise on every weight: a draft that agrees only part of the time."""
    torch.manual_seed(seed)
    out = LlamaForCausalLM(model.config).eval()
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        for w in out.parameters():
            w.add_(scale * w.std() * torch.randn_like(w))
    return out


@pytest.fixture(scope="module")
def target_model() -> Any:
    model = tiny_llama(0)
    with torch.no_grad():  # sharper distributions: long agreeing runs and real rejections
        model.lm_head.weight.mul_(4.0)
    return model


@pytest.fixture(scope="module")
def prompts() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    rand = torch.randint(0, 64, (1, 10), generator=g)
    repeated = torch.tensor([[5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6]])  # n-gram lookup finds these
    return [rand, repeated, torch.tensor([[11]])]


def hf_greedy(model: Any, ids: torch.Tensor, n: int, eos: int | None = None) -> list[int]:
    """transformers' own greedy decoding: exactly n tokens, or up to ``eos`` when given."""
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                             min_new_tokens=n if eos is None else 0, do_sample=False,
                             pad_token_id=0, eos_token_id=eos)
    return [int(t) for t in out[0, ids.shape[1]:]]


def check_invariants(result: DecodeResult, max_new: int) -> None:
    """The trace invariants every writer keeps (tracing/validate.py checks them on read)."""
    assert sum(c.emitted for c in result.cycles) == len(result.tokens) <= max_new
    assert [c.cycle for c in result.cycles] == list(range(len(result.cycles)))
    assert result.verify_passes == len(result.cycles)
    for c in result.cycles:
        assert 0 <= c.accepted <= c.tau
        assert 1 <= c.emitted <= c.accepted + 1
        assert min(c.draft_s, c.verify_s, c.overhead_s) >= 0.0
    contexts = [c.context_tokens for c in result.cycles]
    assert contexts == sorted(contexts)


def make_kind(kind: str, model: Any) -> Draft:
    if kind == "model":
        return ModelDraft(perturbed(model, 1, 0.3), "noisy")
    if kind == "ngram":
        return NgramDraft(3)
    return LayerSkipDraft(model, 2, "layerskip:layers=2")


@pytest.mark.parametrize("kind", ["model", "ngram", "layerskip"])
@pytest.mark.parametrize("tau", [1, 2, 4, 7])
def test_greedy_matches_target_only(kind: str, tau: int, target_model: Any,
                                    prompts: list[torch.Tensor]) -> None:
    draft = make_kind(kind, target_model)
    for ids in prompts:
        ref = hf_greedy(target_model, ids, 24)
        result = speculative_generate(Target(target_model), draft, make_policy(f"fixed:tau={tau}"),
                                      ids, max_new_tokens=24, sampling=SamplingConfig())
        assert result.tokens == ref
        assert result.stopped == "length"
        check_invariants(result, 24)
        assert max(c.tau for c in result.cycles) <= tau
        assert all(c.draft_prob is None for c in result.cycles)  # greedy, no confidence policy


def test_drafts_really_speculate(target_model: Any, prompts: list[torch.Tensor]) -> None:
    """Guard against a vacuous equality test: drafts are accepted AND rejected, and the
    perfect draft (the target itself) is always accepted."""
    ids = prompts[0]
    for kind in ("model", "layerskip"):
        r = speculative_generate(Target(target_model), make_kind(kind, target_model),
                                 make_policy("fixed:tau=4"), ids, max_new_tokens=40,
                                 sampling=SamplingConfig())
        accepted = [c.accepted for c in r.cycles if c.tau]
        assert max(accepted) >= 2 and any(c.accepted < c.tau for c in r.cycles)
        assert len(r.cycles) < 40
    ngram = speculative_generate(Target(target_model), NgramDraft(3), make_policy("fixed:tau=4"),
                                 prompts[1], max_new_tokens=24, sampling=SamplingConfig())
    assert any(c.tau > 0 for c in ngram.cycles)
    perfect = speculative_generate(Target(target_model), ModelDraft(target_model, "self"),
                                   make_policy("fixed:tau=4"), ids, max_new_tokens=21,
                                   sampling=SamplingConfig())
    assert [(c.tau, c.accepted, c.emitted) for c in perfect.cycles] == [(4, 4, 5)] * 4 + [(0, 0, 1)]


def test_target_only_equals_generate(target_model: Any, prompts: list[torch.Tensor]) -> None:
    for ids in prompts:
        got = target_only_generate(Target(target_model), ids, max_new_tokens=16,
                                   sampling=SamplingConfig())
        assert got == hf_greedy(target_model, ids, 16)


def test_policies_with_greedy(target_model: Any, prompts: list[torch.Tensor]) -> None:
    """Adaptive-length and confidence policies change tau, never the output."""
    ids = prompts[0]
    ref = hf_greedy(target_model, ids, 30)
    draft = ModelDraft(perturbed(target_model, 1, 0.3), "noisy")
    for spec in ("heuristic:tau=2", "confidence:threshold=0.5,max_tau=6", "target_only"):
        r = speculative_generate(Target(target_model), draft, make_policy(spec), ids,
                                 max_new_tokens=30, sampling=SamplingConfig())
        assert r.tokens == ref, spec
        check_invariants(r, 30)
    conf = speculative_generate(Target(target_model), draft,
                                make_policy("confidence:threshold=0.5,max_tau=6"), ids,
                                max_new_tokens=30, sampling=SamplingConfig())
    drafted = [c for c in conf.cycles if c.tau]
    assert drafted and all(c.draft_prob is not None and len(c.draft_prob) == c.tau
                           for c in drafted)
    # drafting stops at the first position whose draft probability is under the threshold
    for c in drafted:
        assert c.draft_prob is not None
        assert all(p >= 0.5 for p in c.draft_prob[:-1])
        assert c.tau == 6 or c.draft_prob[-1] < 0.5 or c.context_tokens + c.tau + 1 >= 40


def test_eos_and_limits(target_model: Any, prompts: list[torch.Tensor]) -> None:
    ids = prompts[0]
    ref = hf_greedy(target_model, ids, 30)
    eos = ref[9]
    stop = ref.index(eos)
    r = speculative_generate(Target(target_model), LayerSkipDraft(target_model, 2, "ls"),
                             make_policy("fixed:tau=7"), ids, max_new_tokens=30,
                             sampling=SamplingConfig(), eos_token_ids={eos})
    assert r.tokens == ref[: stop + 1] and r.stopped == "eos"
    check_invariants(r, 30)
    one = speculative_generate(Target(target_model), NgramDraft(), make_policy("fixed:tau=4"),
                               ids, max_new_tokens=1, sampling=SamplingConfig())
    assert one.tokens == ref[:1] and [c.tau for c in one.cycles] == [0]
    budget = speculative_generate(Target(target_model), NgramDraft(),
                                  make_policy("fixed:tau=4,max_verify=3"), ids,
                                  max_new_tokens=30, sampling=SamplingConfig())
    assert budget.stopped == "budget" and budget.verify_passes == 3
    assert budget.tokens == ref[: len(budget.tokens)]


def test_on_cycle_streams_the_same_records(target_model: Any,
                                           prompts: list[torch.Tensor]) -> None:
    seen: list[Any] = []
    ticks = iter(range(10_000))
    r = speculative_generate(Target(target_model), NgramDraft(), make_policy("fixed:tau=3"),
                             prompts[1], max_new_tokens=12, sampling=SamplingConfig(),
                             request_id=7, clock=lambda: float(next(ticks)),
                             on_cycle=seen.append)
    assert seen == r.cycles and all(c.request_id == 7 for c in seen)
    assert r.prefill_s == 1.0  # two clock reads around the prefill
    assert r.first_token_s > r.start_s + r.prefill_s
    assert r.first_token_s <= r.cycles[0].start_s + 10
    check_invariants(r, 12)


def _binned_pvalue(counts: np.ndarray, exact: np.ndarray) -> float:
    """Chi-square of counts against exact probabilities, cells with < 5 expected merged."""
    expected = counts.sum() * exact / exact.sum()
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def _exact_two_tokens(model: Any, ids: torch.Tensor, sampling: SamplingConfig) -> np.ndarray:
    """P(t1, t2) of target-only sampling, computed from the model: (V * V,)."""
    with torch.no_grad():
        p1 = probs_from_logits(model(ids).logits[0, -1], sampling)
        vocab = p1.shape[0]
        ext = torch.cat([ids.repeat(vocab, 1), torch.arange(vocab)[:, None]], dim=1)
        p2 = probs_from_logits(model(ext).logits[:, -1], sampling)  # (V, V): row t1
    return (p1[:, None] * p2).double().numpy().ravel()


@pytest.mark.parametrize(
    ("kind", "temperature", "top_p"),
    [("model", 1.0, 1.0), ("model", 0.7, 0.8), ("ngram", 1.0, 1.0)],
)
def test_sampling_distribution_is_the_targets(kind: str, temperature: float,
                                              top_p: float) -> None:
    vocab, runs = 8, 1500
    model = tiny_llama(3, vocab=vocab, layers=2, hidden=16)
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    ids = torch.tensor([[1]]) if kind == "model" else torch.tensor([[2, 5, 2]])
    draft: Draft = ModelDraft(perturbed(model, 4, 0.8), "noisy") if kind == "model" \
        else NgramDraft(2)
    exact = _exact_two_tokens(model, ids, SamplingConfig(temperature, top_p))
    counts = np.zeros(vocab * vocab, dtype=np.int64)
    accepted = rejected = 0
    for seed in range(runs):
        r = speculative_generate(Target(model), draft, make_policy("fixed:tau=2"), ids,
                                 max_new_tokens=3,
                                 sampling=SamplingConfig(temperature, top_p, seed=seed))
        counts[r.tokens[0] * vocab + r.tokens[1]] += 1
        c0 = r.cycles[0]
        accepted += c0.accepted
        rejected += c0.accepted < c0.tau
        assert c0.draft_prob is not None and len(c0.draft_prob) == c0.tau
    assert accepted > runs // 10 and rejected > runs // 10  # both branches exercised
    assert _binned_pvalue(counts, exact) > 1e-3


def test_sampling_check_has_power() -> None:
    """The same check rejects sampling from the draft instead of the target."""
    vocab = 8
    model = tiny_llama(3, vocab=vocab, layers=2, hidden=16)
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    other = perturbed(model, 4, 0.8)
    ids = torch.tensor([[1]])
    exact = _exact_two_tokens(model, ids, SamplingConfig(1.0))
    counts = np.zeros(vocab * vocab, dtype=np.int64)
    for seed in range(1500):
        toks = target_only_generate(Target(other), ids, max_new_tokens=2,
                                    sampling=SamplingConfig(1.0, seed=seed))
        counts[toks[0] * vocab + toks[1]] += 1
    assert _binned_pvalue(counts, exact) < 1e-6


def test_sampling_is_reproducible(target_model: Any, prompts: list[torch.Tensor]) -> None:
    draft = ModelDraft(perturbed(target_model, 1, 0.3), "noisy")
    runs = [speculative_generate(Target(target_model), draft, make_policy("fixed:tau=3"),
                                 prompts[0], max_new_tokens=20,
                                 sampling=SamplingConfig(0.8, seed=11)).tokens
            for _ in range(2)]
    torch.manual_seed(123)  # the global RNG plays no part
    third = speculative_generate(Target(target_model), draft, make_policy("fixed:tau=3"),
                                 prompts[0], max_new_tokens=20,
                                 sampling=SamplingConfig(0.8, seed=11)).tokens
    assert runs[0] == runs[1] == third


def test_target_cache_rollback_equals_reencoding(target_model: Any) -> None:
    """Feed a verify block, keep a prefix, feed a new token: logits match a fresh forward."""
    ctx = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(2))
    block = torch.tensor([[3, 17, 29, 41]])  # [last, x1, x2, x3]
    with torch.inference_mode():
        lm = CachedLM(target_model)
        lm.feed(ctx)
        lm.feed(block, logits_to_keep=4)
        for keep in (3, 1, 0):  # x1, x2 kept; then only `last`; then nothing of the block
            lm.crop_to(9 + 1 + keep)
            assert lm.length == 10 + keep
            z = torch.tensor([[7]])
            got = lm.feed(z)[-1]
            full = torch.cat([ctx, block[:, : 1 + keep], z], dim=1)
            want = target_model(full).logits[0, -1]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
            lm.crop_to(10 + keep)
        with pytest.raises(ValueError):
            lm.crop_to(lm.length + 1)


def test_decode_leaves_caches_consistent(target_model: Any, prompts: list[torch.Tensor]) -> None:
    """After a whole run with rejections, the draft's cache equals re-encoding its context."""
    noisy = perturbed(target_model, 1, 0.3)
    draft = ModelDraft(noisy, "noisy")
    r = speculative_generate(Target(target_model), draft, make_policy("fixed:tau=4"), prompts[0],
                             max_new_tokens=25, sampling=SamplingConfig())
    assert any(c.accepted < c.tau for c in r.cycles)
    context = prompts[0][0].tolist() + r.tokens
    assert draft.ids == context
    with torch.inference_mode():
        pending = torch.tensor([context[draft.lm.length:]])
        got = draft.lm.feed(pending)[-1]
        want = noisy(torch.tensor([context])).logits[0, -1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.model
def test_bundled_model_greedy_matches_target_only() -> None:
    from live.drafts import make_draft
    from live.models import load_model

    target = load_model("smollm2")
    tok = target.tokenizer
    texts = ["def add(a, b):\n    return a + b\n\ndef sub(a, b):\n",
             "The capital of France is"]
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([tok.encode(text)])
            eos = {tok.eos_token_id}
            ref = target_only_generate(target, ids, max_new_tokens=32, sampling=SamplingConfig(),
                                       eos_token_ids=eos)
            assert ref == hf_greedy(target.model, ids, 32, eos=tok.eos_token_id)
            for spec in ("ngram", "layerskip:layers=16"):
                draft = make_draft(spec, target)
                r = speculative_generate(target, draft, make_policy("fixed:tau=4"), ids,
                                         max_new_tokens=32, sampling=SamplingConfig(),
                                         eos_token_ids=eos)
                assert r.tokens == ref, (spec, text)
                check_invariants(r, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_greedy_and_sampling(target_model: Any, prompts: list[torch.Tensor]) -> None:
    """The CUDA path (device generator, synchronised clock, device-resident draft tokens)."""
    model = tiny_llama(0).cuda()
    model.load_state_dict(target_model.state_dict())
    noisy = perturbed(target_model, 1, 0.3).cuda()
    target = Target(model, device="cuda")
    for ids in prompts:
        ref = hf_greedy(model, ids.cuda(), 20)
        for draft in (ModelDraft(noisy, "noisy", device="cuda"), NgramDraft(3, device="cuda"),
                      LayerSkipDraft(model, 2, "ls", device="cuda")):
            r = speculative_generate(target, draft, make_policy("fixed:tau=3"), ids,
                                     max_new_tokens=20, sampling=SamplingConfig())
            assert r.tokens == ref
            check_invariants(r, 20)
            sampled = [speculative_generate(target, draft, make_policy("fixed:tau=3"), ids,
                                            max_new_tokens=20,
                                            sampling=SamplingConfig(0.9, 0.95, seed=3))
                       for _ in range(2)]
            assert sampled[0].tokens == sampled[1].tokens
            check_invariants(sampled[0], 20)


def test_requests_of_one_seed_draw_their_own_uniforms(target_model: Any) -> None:
    """Two requests of one run, same seed and same prompt, draw different random streams (their
    acceptance outcomes are independent), and each is reproducible from the seed alone."""
    draft = ModelDraft(perturbed(target_model, 1, 0.3), "noisy")
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    sampling = SamplingConfig(1.0, seed=11)

    def run(rid: int) -> DecodeResult:
        return speculative_generate(Target(target_model), draft, make_policy("fixed:tau=3"), ids,
                                    max_new_tokens=24, sampling=sampling, request_id=rid)

    first, second, second_again = run(0), run(1), run(1)
    assert first.tokens != second.tokens
    assert second.tokens == second_again.tokens
    assert [c.accepted for c in second.cycles] == [c.accepted for c in second_again.cycles]


def test_a_larger_vocabulary_draft_proposes_only_target_tokens() -> None:
    """A draft whose embedding table is larger (padded over the same tokenizer) never proposes
    a token the target lacks, even when it would prefer one; greedy stays exact."""
    target = tiny_llama(0, vocab=64)
    big = tiny_llama(1, vocab=96)
    with torch.no_grad():
        big.lm_head.weight[64:].mul_(50.0)  # left alone it would mostly pick ids >= 64
    ids = torch.tensor([[3, 9, 27]])
    ref = target_only_generate(Target(target), ids, max_new_tokens=16, sampling=SamplingConfig())
    for sampling in (SamplingConfig(), SamplingConfig(1.0, seed=2)):
        r = speculative_generate(Target(target), ModelDraft(big, "big"),
                                 make_policy("fixed:tau=3"), ids, max_new_tokens=16,
                                 sampling=sampling)
        check_invariants(r, 16)
        assert all(0 <= t < 64 for t in r.tokens)
        assert sum(c.tau for c in r.cycles) > 0
        if sampling.greedy:
            assert r.tokens == ref
