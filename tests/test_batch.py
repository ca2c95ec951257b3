"""live.batch / batch_cache / batch_drafts: batched speculative decoding on tiny random Llamas.

Greedy: every request's output equals single-request target-only greedy decoding, for every
draft kind, with mixed prompt lengths, EOS mid-batch, requests joining and leaving, a tight
per-step token budget. Sampling: the joint distribution of two sampled tokens matches the
target's exactly computed one (chi-square). The shared cache with holes: logits equal those of
one sequence run alone, through joins, rejections, leaves and compaction.
"""

from __future__ import annotations

from typing import Any

import pytest

from tiny import tiny_llama

torch = pytest.importorskip("torch")

from live.batch import BatchDecoder, BatchRequest  # noqa: E402
from live.batch_cache import BatchedLM  # noqa: E402
from live.batch_drafts import BatchModelDraft, BatchNgramDraft  # noqa: E402
from live.decode import speculative_generate, target_only_generate  # noqa: E402
from live.drafts import NgramDraft, shallow_copy  # noqa: E402
from live.sampling import SamplingConfig  # noqa: E402
from sim.policies.library import make_policy  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GREEDY = SamplingConfig()
TEMPERATURE = 0.25  # peaked distributions: target and draft disagree, rejections matter


class Target:
    """A stand-in LoadedModel: what the decoders need."""

    def __init__(self, model: Any) -> None:
        self.model, self.device = model, "cpu"


@pytest.fixture(scope="module")
def target() -> Target:
    return Target(tiny_llama(seed=0, vocab=64, layers=3))


def _prompts(lengths: tuple[int, ...], seed: int = 3) -> list[Any]:
    gen = torch.Generator().manual_seed(seed)
    # a repeated motif gives the n-gram draft something to find
    out = []
    for n in lengths:
        base = torch.randint(0, 64, (1, max(1, n // 2)), generator=gen)
        out.append(torch.cat([base, base], dim=1)[:, :n])
    return out


def _run(decoder: BatchDecoder, requests: list[BatchRequest]) -> dict[int, list[int]]:
    """Feed requests in as rows free up (joins and leaves between steps); outputs by key."""
    pending, outs = list(requests), {}
    while pending or decoder.rows:
        while pending and decoder.free:
            decoder.add(pending.pop(0))
        for out in decoder.step():
            if out.finished is not None:
                outs[out.row.request.key] = out.row.out
    return outs


def _drafts(target: Target) -> dict[str, Any]:
    return {"none": None, "ngram": BatchNgramDraft(2),
            "layerskip": BatchModelDraft(shallow_copy(target.model, 1), "layerskip:layers=1"),
            "model": BatchModelDraft(tiny_llama(seed=7, vocab=64, layers=1), "tiny-draft")}


@pytest.mark.parametrize("kind", ["none", "ngram", "layerskip", "model"])
def test_greedy_batched_equals_target_only_for_every_draft(target: Target, kind: str) -> None:
    prompts = _prompts((1, 4, 9, 17, 3, 30, 12))
    limits = [25, 9, 25, 14, 25, 20, 3]
    refs = [target_only_generate(target, p, max_new_tokens=m, sampling=GREEDY)
            for p, m in zip(prompts, limits, strict=True)]
    # EOS mid-batch: a token request 0 first produces at position >= 4 ends it (others too)
    stop_at = next(i for i in range(4, len(refs[0])) if refs[0][i] not in refs[0][:i])
    eos = {refs[0][stop_at]}
    refs = [target_only_generate(target, p, max_new_tokens=m, sampling=GREEDY,
                                 eos_token_ids=eos) for p, m in zip(prompts, limits, strict=True)]
    assert len(refs[0]) == stop_at + 1 and refs[0][-1] in eos
    decoder = BatchDecoder(target, _drafts(target)[kind], max_batch=3, max_step_tokens=9)
    requests = [BatchRequest(i, p, m, GREEDY, make_policy("fixed:tau=3"), eos)
                for i, (p, m) in enumerate(zip(prompts, limits, strict=True))]
    outs = _run(decoder, requests)
    assert [outs[i] for i in range(len(prompts))] == refs
    assert not decoder.rows and decoder.lm.rows == 0


def test_cycles_follow_the_single_stream_convention(target: Target) -> None:
    """Batched cycles: emitted sums to the output, accepted <= tau, batch sizes recorded,
    and per-request policy state: each request's (tau, accepted) sequence is the one it gets
    decoded alone with its own heuristic policy (deterministic draft, greedy)."""
    prompts = _prompts((6, 11, 20, 8))
    decoder = BatchDecoder(target, BatchNgramDraft(2), max_batch=4)
    rows: dict[int, Any] = {}
    for i, p in enumerate(prompts):
        rows[i] = decoder.add(BatchRequest(i, p, 30, GREEDY, make_policy("heuristic:tau=2")))
    while decoder.rows:
        decoder.step()
    sizes = set()
    for i, p in enumerate(prompts):
        row = rows[i]
        assert sum(c.emitted for c in row.cycles) == len(row.out)
        assert all(0 <= c.accepted <= c.tau for c in row.cycles)
        sizes.update(c.batch_size for c in row.cycles)
        alone = speculative_generate(target, NgramDraft(2), make_policy("heuristic:tau=2"), p,
                                     max_new_tokens=30, sampling=GREEDY)
        assert [(c.tau, c.accepted) for c in row.cycles] == [
            (c.tau, c.accepted) for c in alone.cycles]
        assert row.out == alone.tokens
    assert 4 in sizes


def test_the_run_policy_plans_each_step_by_batch_size(target: Target) -> None:
    """fixed:tau_by_batch=1:3,3:0 through the run's plan_batch: steps of 3 rows draft nothing,
    steps of fewer rows draft up to 3; every request has its own fork."""
    run = make_policy("fixed:tau_by_batch=1:3,3:0")
    decoder = BatchDecoder(target, BatchNgramDraft(1), max_batch=3, policy=run)
    prompts = _prompts((8, 8, 8))
    forks = [run.fork() for _ in prompts]
    assert len({id(f) for f in forks}) == 3 and run not in forks
    for i, (p, f) in enumerate(zip(prompts, forks, strict=True)):
        decoder.add(BatchRequest(i, p, 6 + 4 * i, GREEDY, f))
    taus: dict[int, set[int]] = {}
    while decoder.rows:
        outs = decoder.step()
        cycles = [o.cycle for o in outs if o.cycle is not None]
        taus.setdefault(len(cycles), set()).update(c.tau for c in cycles)
    assert taus[3] == {0} and max(taus[1]) > 0


def test_step_token_budget_trims_the_longest_drafts(target: Target) -> None:
    prompts = _prompts((10, 10, 10))
    decoder = BatchDecoder(target, BatchNgramDraft(1), max_batch=3, max_step_tokens=6)
    for i, p in enumerate(prompts):
        decoder.add(BatchRequest(i, p, 12, GREEDY, make_policy("fixed:tau=4")))
    while decoder.rows:
        outs = decoder.step()
        cycles = [o.cycle for o in outs if o.cycle is not None]
        assert sum(c.tau + 1 for c in cycles) <= 6


def test_cancel_frees_the_row_and_the_rest_stay_exact(target: Target) -> None:
    prompts = _prompts((5, 9, 13))
    refs = [target_only_generate(target, p, max_new_tokens=15, sampling=GREEDY) for p in prompts]
    decoder = BatchDecoder(target, BatchModelDraft(shallow_copy(target.model, 2), "ls"),
                           max_batch=3)
    for i, p in enumerate(prompts):
        decoder.add(BatchRequest(i, p, 15, GREEDY, make_policy("fixed:tau=2")))
    decoder.step()
    gone = decoder.cancel(1)
    assert gone is not None and gone.request.key == 1 and decoder.free == 1
    outs = _run(decoder, [])
    assert outs == {0: refs[0], 2: refs[2]}


def test_bad_batch_settings_are_specsim_errors(target: Target) -> None:
    from tracing.errors import SpecsimError

    with pytest.raises(SpecsimError, match="max-batch"):
        BatchDecoder(target, None, max_batch=0)
    with pytest.raises(SpecsimError, match="max tokens per step"):
        BatchDecoder(target, None, max_batch=4, max_step_tokens=2)
    with pytest.raises(SpecsimError, match="at least one token"):
        BatchRequest(0, torch.zeros(1, 0, dtype=torch.long), 4, GREEDY, make_policy("fixed"))


@pytest.mark.filterwarnings("error::FutureWarning")  # the current cache keyword (issue 24)
def test_batched_cache_matches_each_sequence_alone(target: Target) -> None:
    """Rows of different lengths, an uneven feed, a rejection (truncate), a leave and a
    compaction: each row's logits equal a plain forward over its own tokens; no transformers
    FutureWarning (the cache goes in under the keyword this transformers names)."""
    model = target.model
    seqs = [s[0].tolist() for s in _prompts((5, 1, 9), seed=11)]
    lm = BatchedLM(model)
    ctx = []
    for s in seqs:
        lm.add_row(torch.tensor([s[:-1]]) if len(s) > 1 else None)
        ctx.append(s[:-1])

    def check(feeds: list[list[int]], logits: Any) -> None:
        for b, feed in enumerate(feeds):
            if not feed:
                continue
            with torch.inference_mode():
                ref = model(input_ids=torch.tensor([ctx[b]])).logits[0, -len(feed):]
            assert torch.allclose(logits[b, : len(feed)], ref, atol=1e-5)

    feeds = [[seqs[0][-1], 7, 8, 9], [seqs[1][-1]], [seqs[2][-1], 3, 4]]
    for b, f in enumerate(feeds):
        ctx[b] = ctx[b] + f
    check(feeds, lm.feed(feeds))
    lm.truncate(0, len(ctx[0]) - 2)  # rows 0: the last two fed tokens rejected
    ctx[0] = ctx[0][:-2]
    feeds = [[1, 2], [], [5]]
    for b, f in enumerate(feeds):
        ctx[b] = ctx[b] + f
    check(feeds, lm.feed(feeds))
    assert lm.lengths == [len(c) for c in ctx]
    lm.remove_rows([1])
    ctx = [ctx[0], ctx[2]]
    assert lm.columns == max(lm.lengths)  # leaving compacts
    feeds = [[6], [7, 8]]
    for b, f in enumerate(feeds):
        ctx[b] = ctx[b] + f
    check(feeds, lm.feed(feeds))


def _exact_pairs(model: Any, prompt: list[int], vocab: int, temperature: float) -> Any:
    """P(t1, t2) under the target at ``temperature``."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].double()
        p1 = torch.softmax(logits / temperature, -1)
        ctx = torch.tensor([[*prompt, t] for t in range(vocab)])
        p2 = torch.softmax(model(input_ids=ctx).logits[:, -1].double() / temperature, -1)
    return p1[:, None] * p2  # (V, V)


@pytest.mark.parametrize("kind", ["model", "ngram"])
def test_sampled_output_follows_the_target_distribution(kind: str) -> None:
    """Two tokens per request (one speculative cycle: a draft token, then accept or resample
    and the bonus), 1200 requests with their own seeds, 32 to a batch: the joint frequency of
    (t1, t2) passes a chi-square test against the target's exact probabilities."""
    from scipy.stats import chisquare

    vocab = 5
    tgt = Target(tiny_llama(seed=1, vocab=vocab, layers=2))
    prompt = [1, 2, 3, 1, 2]
    draft = (BatchModelDraft(tiny_llama(seed=9, vocab=vocab, layers=1), "d") if kind == "model"
             else BatchNgramDraft(2))
    decoder = BatchDecoder(tgt, draft, max_batch=32)
    n = 1200
    requests = [BatchRequest(i, torch.tensor([prompt]), 2,
                             SamplingConfig(temperature=TEMPERATURE, seed=1000 + i),
                             make_policy("fixed:tau=1")) for i in range(n)]
    outs = _run(decoder, requests)
    counts = torch.zeros(vocab, vocab)
    for out in outs.values():
        counts[out[0], out[1]] += 1
    expected = _exact_pairs(tgt.model, prompt, vocab, TEMPERATURE).flatten() * n
    keep = expected > 5  # chi-square needs populated cells; the rest pooled
    f_obs = [*counts.flatten()[keep].tolist(), float(counts.flatten()[~keep].sum())]
    f_exp = [*expected[keep].tolist(), float(expected[~keep].sum())]
    if f_exp[-1] == 0:
        f_obs, f_exp = f_obs[:-1], f_exp[:-1]
    assert chisquare(f_obs, f_exp).pvalue > 1e-3


@pytest.mark.model
def test_bundled_model_batched_greedy_equals_target_only() -> None:
    """SmolLM2-135M, fp32: three edit prompts decoded together with n-gram and layer-skip
    drafts give target-only greedy text token for token."""
    from live.batch_drafts import make_batch_draft
    from live.capture import eos_ids
    from live.models import load_model
    from live.prompts import encode_prompt, load_prompts

    model = load_model("smollm2", device="cpu", dtype="float32")
    prompts = [encode_prompt(model.tokenizer, p) for p in load_prompts("builtin:edit", 3)]
    eos = eos_ids(model.tokenizer, model.model)
    refs = [target_only_generate(model, p, max_new_tokens=16, sampling=GREEDY,
                                 eos_token_ids=eos) for p in prompts]
    for spec in ("ngram", "layerskip:layers=8"):
        decoder = BatchDecoder(model, make_batch_draft(spec, model), max_batch=3)
        requests = [BatchRequest(i, p, 16, GREEDY, make_policy("fixed:tau=4"), eos)
                    for i, p in enumerate(prompts)]
        outs = _run(decoder, requests)
        assert [outs[i] for i in range(3)] == refs, spec


def test_profile_at_a_chosen_context(target: Target) -> None:
    """``--profile-context``: every profiled row holds that many tokens (the prompt repeated)."""
    from live.batch_profile import profile_batched_verify
    from live.serve import ServeConfig
    from tracing.errors import SpecsimError

    prompt = _prompts((8,))[0]
    got = profile_batched_verify(target, prompt, max_batch=2, max_tokens=2, rounds=1,
                                 context=30)
    assert got["context_tokens"] == 30
    assert len(got["seconds"]) == 2 and all(len(r) == 2 and min(r) > 0 for r in got["seconds"])
    assert profile_batched_verify(target, prompt, max_batch=1, max_tokens=1,
                                  rounds=1)["context_tokens"] == 8
    with pytest.raises(ValueError, match="context"):
        profile_batched_verify(target, prompt, max_batch=1, max_tokens=1, context=-1)
    with pytest.raises(SpecsimError, match="--profile-context"):
        ServeConfig(target="x", trace_out="/tmp/never-written.jsonl", profile_context=-1)
