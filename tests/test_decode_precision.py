"""What greedy speculative decoding guarantees in bf16 (see docs/live.md, "Greedy in bf16").

In fp32, greedy speculative output is token-identical to target-only greedy (test_decode.py).
In bf16 it need not be: a verify pass scores ``tau + 1`` positions in one forward, and its
matrix products round differently from ``tau + 1`` one-token passes, so where the target's top
two logits lie within that rounding the argmax can flip and the two outputs part there (on an
H100, SmolLM2-135M bf16, a perfect self-draft at tau = 6: 8 of 40 prompts). What does hold in
any dtype, and is tested here on bf16 tiny models:

1. target-only decoding (one token per pass) is token-identical to transformers' greedy
   ``generate()`` in the same dtype;
2. every emitted token is the argmax of the target's logits in the verify pass that scored it
   (accepted draft tokens included): the acceptance rule itself is exact, only the logits move.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from live.decode import speculative_generate, target_only_generate
from live.drafts import ModelDraft, NgramDraft
from live.sampling import SamplingConfig
from sim.policies.library import make_policy
from tiny import tiny_llama

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Target:
    """Decode needs only .model and .device."""

    def __init__(self, model: Any) -> None:
        self.model, self.device = model, "cpu"


@pytest.fixture(scope="module")
def bf16_model() -> Any:
    model = tiny_llama(0, vocab=128, layers=2, hidden=32)
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)
    return model.to(torch.bfloat16)


PROMPTS = [[5, 6, 7, 8, 5, 6, 7], [1, 2, 3], [40, 41, 90, 2, 40, 41]]


def test_bf16_target_only_equals_generate(bf16_model: Any) -> None:
    for prompt in PROMPTS:
        ids = torch.tensor([prompt])
        ours = target_only_generate(Target(bf16_model), ids, max_new_tokens=16,
                                    sampling=SamplingConfig())
        with torch.no_grad():
            out = bf16_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=16, min_new_tokens=16, pad_token_id=0)
        assert ours == out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("kind", ["self", "ngram"])
def test_bf16_every_token_is_the_argmax_of_its_verify_pass(bf16_model: Any, kind: str) -> None:
    passes: list[torch.Tensor] = []

    def record(module: Any, args: Any, kwargs: Any, output: Any) -> None:
        passes.append(output.logits[0].float())

    draft = ModelDraft(copy.deepcopy(bf16_model), "self") if kind == "self" else NgramDraft(2)
    handle = bf16_model.register_forward_hook(record, with_kwargs=True)
    try:
        for prompt in PROMPTS:
            passes.clear()
            r = speculative_generate(Target(bf16_model), draft, make_policy("fixed:tau=6"),
                                     torch.tensor([prompt]), max_new_tokens=24,
                                     sampling=SamplingConfig())
            verify = passes[1:]  # the first forward is the prefill
            assert len(verify) == len(r.cycles)
            assert sum(c.tau for c in r.cycles) > 0
            done = 0
            for c, logits in zip(r.cycles, verify, strict=True):
                assert logits.shape[0] == c.tau + 1
                emitted = r.tokens[done:done + c.emitted]
                assert emitted == logits[:c.emitted].argmax(dim=-1).tolist()
                done += c.emitted
    finally:
        handle.remove()
