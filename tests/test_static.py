"""live.static: the static KV cache (rollback by position) and the compiled decode/verify steps.

The static cache is tested eagerly (``compile=False``: the same cache, no compilation, cheap);
compilation with dynamo alone (backend ``eager``) checks that a policy changing tau never
recompiles; one test compiles with inductor (marked ``compile``; it runs in CI) for greedy token
identity with the eager path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import live.static
from live.decode import speculative_generate
from live.drafts import LayerSkipDraft, ModelDraft, NgramDraft
from live.sampling import SamplingConfig
from live.static import StaticLM
from sim.policies.library import make_policy
from tiny import tiny_llama, tiny_mistral
from tracing.errors import SpecsimError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = torch.tensor([[5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6]])


class Target:
    """Decode needs only .model and .device."""

    def __init__(self, model: Any) -> None:
        self.model, self.device = model, "cpu"


@pytest.fixture(scope="module")
def model() -> Any:
    m = tiny_llama(0, layers=2, hidden=16)
    with torch.no_grad():  # sharper distributions: long agreeing runs and real rejections
        m.lm_head.weight.mul_(4.0)
    return m


def test_rollback_by_position_equals_reencoding(model: Any) -> None:
    seq = torch.randint(0, 64, (9,), generator=torch.Generator().manual_seed(2)).tolist()
    with torch.inference_mode():
        lm = StaticLM(model, 40, compile=False)
        lm.feed(torch.tensor([seq]))
        for keep, block in ((2, [3, 17, 29, 41]), (0, [5, 6]), (3, [8, 9, 10, 11, 12])):
            lm.feed(torch.tensor([block]), logits_to_keep=len(block))
            lm.crop_to(len(seq) + keep)  # the rest of the block stays in its slots, unread
            seq += block[:keep]
            got = lm.feed(torch.tensor([[7]]))[-1]
            want = model(torch.tensor([[*seq, 7]])).logits[0, -1]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
            lm.crop_to(len(seq))
        lm.reset()
        assert lm.length == 0
        again = lm.feed(torch.tensor([seq]))[-1]
        torch.testing.assert_close(again, model(torch.tensor([seq])).logits[0, -1],
                                   atol=1e-5, rtol=1e-4)


def test_rollback_without_static_layer_crop(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers 5.17-5.2x: ``StaticLayer`` has no ``crop`` (``StaticCache.crop`` then raised
    AttributeError in ``crop_to``); the write position is moved back by hand, and decoding
    after the rollback equals decoding without it."""
    from transformers import cache_utils

    if hasattr(cache_utils.StaticLayer, "crop"):
        monkeypatch.delattr(cache_utils.StaticLayer, "crop")
    seq = [5, 6, 7, 8, 9, 10]
    with torch.inference_mode():
        lm = StaticLM(model, 24, compile=False)
        lm.feed(torch.tensor([seq]))
        lm.feed(torch.tensor([[40, 41, 42]]), logits_to_keep=3)
        lm.crop_to(len(seq) + 1)  # keep 40, reject 41 and 42
        assert lm.length == len(seq) + 1
        assert all(int(layer.cumulative_length) == len(seq) + 1 for layer in lm.cache.layers)
        got = lm.feed(torch.tensor([[7]]))[-1]
        want = model(torch.tensor([[*seq, 40, 7]])).logits[0, -1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def _drafts(model: Any, static_len: int | None) -> list[Any]:
    lm = StaticLM(model, static_len, compile=False) if static_len else None
    return [NgramDraft(3), LayerSkipDraft(model, 1, "ls", static_len=None),
            ModelDraft(model, "self", lm=lm), None]


@pytest.mark.parametrize("policy", ["fixed:tau=3", "adaptive", "heuristic"])
def test_static_cache_decodes_what_the_dynamic_one_does(model: Any, policy: str) -> None:
    target_lm = StaticLM(model, 64, compile=False)
    for ours, theirs in zip(_drafts(model, 64), _drafts(model, None), strict=True):
        ref = speculative_generate(Target(model), theirs, make_policy(policy), PROMPT,
                                   max_new_tokens=30, sampling=SamplingConfig())
        got = speculative_generate(Target(model), ours, make_policy(policy), PROMPT,
                                   max_new_tokens=30, sampling=SamplingConfig(),
                                   target_lm=target_lm)
        assert got.tokens == ref.tokens
    sampled = [speculative_generate(Target(model), NgramDraft(3), make_policy("fixed:tau=3"),
                                    PROMPT, max_new_tokens=20,
                                    sampling=SamplingConfig(0.9, seed=4), target_lm=lm)
               for lm in (None, target_lm)]
    assert sampled[0].tokens == sampled[1].tokens


def test_static_cache_refuses_what_it_cannot_do(model: Any) -> None:
    with pytest.raises(SpecsimError, match="sliding-window"):
        StaticLM(tiny_mistral(0), 32, compile=False)
    lm = StaticLM(model, 16, compile=False)
    with pytest.raises(SpecsimError, match="exceed its 16 positions"):
        speculative_generate(Target(model), None, make_policy("target_only"), PROMPT,
                             max_new_tokens=8, sampling=SamplingConfig(), target_lm=lm)


def _unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_compiled_steps_never_recompile_as_tau_changes(model: Any) -> None:
    """Dynamo alone (backend eager): the warm-up compiles a graph for 1-token steps and one
    dynamic in the token count (marked dynamic from its first call: no 2-token graph first);
    then nothing more, whatever tau the policy picks."""
    torch._dynamo.reset()
    lm = StaticLM(model, 64, backend="eager")
    before = _unique_graphs()
    lm.warm(PROMPT)
    assert _unique_graphs() - before == 2
    ref = speculative_generate(Target(model), NgramDraft(3), make_policy("adaptive"), PROMPT,
                               max_new_tokens=40, sampling=SamplingConfig())
    for policy in ("fixed:tau=1", "fixed:tau=5", "adaptive", "heuristic", "target_only"):
        speculative_generate(Target(model), NgramDraft(3), make_policy(policy), PROMPT,
                             max_new_tokens=40, sampling=SamplingConfig(), target_lm=lm)
    got = speculative_generate(Target(model), NgramDraft(3), make_policy("adaptive"), PROMPT,
                               max_new_tokens=40, sampling=SamplingConfig(), target_lm=lm)
    assert got.tokens == ref.tokens
    assert _unique_graphs() - before == 2
    assert lm.compile_s > 0


@pytest.mark.compile
def test_inductor_compiled_greedy_equals_eager() -> None:
    """The real fast path: inductor-compiled steps, token-identical to eager decoding."""
    torch._dynamo.reset()
    small = tiny_llama(1, layers=1, hidden=16)
    with torch.no_grad():
        small.lm_head.weight.mul_(4.0)
    lm = StaticLM(small, 64, backend="inductor")
    lm.warm(PROMPT)
    for draft, policy in ((None, "target_only"), (NgramDraft(3), "fixed:tau=3"),
                          (NgramDraft(2), "adaptive")):
        ref = speculative_generate(Target(small), draft, make_policy(policy), PROMPT,
                                   max_new_tokens=24, sampling=SamplingConfig())
        got = speculative_generate(Target(small), draft, make_policy(policy), PROMPT,
                                   max_new_tokens=24, sampling=SamplingConfig(), target_lm=lm)
        assert got.tokens == ref.tokens, (draft, policy)


def test_capture_with_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--compile`` end to end (dynamo's eager backend keeps it cheap): compiled in the
    warm-up, reported apart (``compile_s``), the same greedy text as an eager capture."""
    from test_models import save_tiny_model

    from analysis.cli import main
    from tracing import read_trace

    monkeypatch.setattr(live.static, "BACKEND", "eager")
    torch._dynamo.reset()
    tiny = save_tiny_model(tmp_path / "tiny")
    common = ["capture", "--target", str(tiny), "--prompts", "builtin:edit", "--limit", "2",
              "--max-new-tokens", "8", "--profile-tokens", "3", "--warmup-tokens", "2",
              "--draft", "ngram", "--policy", "fixed:tau=3", "--no-progress"]
    assert main([*common, "--compile", "--out", str(tmp_path / "c.jsonl")]) == 0
    assert main([*common, "--out", str(tmp_path / "e.jsonl")]) == 0
    compiled, eager = read_trace(tmp_path / "c.jsonl"), read_trace(tmp_path / "e.jsonl")
    assert compiled.meta.extra["config"]["compile"] is True
    assert compiled.meta.extra["compile_s"] > 0 and "compile_s" not in eager.meta.extra
    assert compiled.requests["output_text"].tolist() == eager.requests["output_text"].tolist()
